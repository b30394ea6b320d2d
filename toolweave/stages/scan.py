"""The driver's scan of a per-record stage's input: which rows still need work (resume, duplicates,
filters), read from the id column (and the columns a filter needs), never the whole records."""
from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolweave import io
from toolweave.schemas import Reject
from toolweave.stages import ledger
from toolweave.stages.base import StageIO


@dataclass
class InputScan:
    """What the driver decided about a stage's input rows before the pipeline starts."""

    total: int = 0  # input rows
    todo: int = 0  # rows the pipeline will process
    skip_ids: set[str] = field(default_factory=set)  # ids the pipeline must drop
    already_done: int = 0
    filtered: int = 0
    duplicates: list[Reject] = field(default_factory=list)


def scan_inputs(io_: StageIO, wants: Callable[[dict[str, Any]], bool] | None = None,
                columns: list[str] | None = None, limit: int | None = None) -> InputScan:
    """Read the id column (plus `columns` for `wants`) of the inputs; never the whole records.

    Drops ids the ledger lists (done in an earlier run), rows `wants` refuses, and ids that occur
    more than once: which copy is meant cannot be told, so each extra copy is rejected by name and
    none is processed (processing one would need an arbitrary pick that a rerun might not repeat).
    `limit`: rows past the first `limit` wanted ones (done ones included) are skipped.
    """
    done = ledger.done_inputs(io_.ledger)
    # duplicates are found on 8-byte hashes (one array), not on a dict of every id
    hashes = array("q")
    scan = InputScan()
    kept = 0
    for path in io_.inputs:
        for row in io.iter_rows(path, columns=["id", *(columns or [])]):
            scan.total += 1
            rid = str(row.get("id"))
            hashes.append(id_hash(rid))
            if rid in done:
                scan.already_done += 1
                scan.skip_ids.add(rid)
            elif (wants is not None and not wants(row)) or (limit is not None and kept >= limit):
                scan.filtered += 1
                scan.skip_ids.add(rid)
                continue
            kept += 1
    uniq, n = np.unique(np.frombuffer(hashes, dtype=np.int64), return_counts=True)
    dup_hashes = set(uniq[n > 1].tolist())
    counts: Counter[str] = Counter()
    if dup_hashes:  # rare: a second pass names them
        for path in io_.inputs:
            for row in io.iter_rows(path, columns=["id"]):
                rid = str(row.get("id"))
                if id_hash(rid) in dup_hashes:
                    counts[rid] += 1
    dup_ids = {i for i, c in counts.items() if c > 1 and i not in done}
    for i in sorted(dup_ids):
        scan.skip_ids.add(i)
        scan.duplicates.append(Reject(id=f"{io_.stage}:duplicate:{i}", stage=io_.stage,
                                      source=",".join(map(str, io_.inputs)),
                                      reason=f"input id {i!r} occurs {counts[i]} times; none processed "
                                             f"(give the records distinct ids)", record=i))
    # for progress and ETA (a duplicate that was also past `limit` may be subtracted twice)
    scan.todo = max(0, scan.total - scan.already_done - scan.filtered - sum(counts[i] for i in dup_ids))
    return scan


def id_hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little", signed=True)
