"""Exactly-once commits of per-record stages: a batch's outputs, then its ledger entry.

A batch of inputs is committed by writing each output dataset's part file (atomic: tmp + rename)
under one name derived from the batch's input ids, and *then* a ledger part listing those ids.
The ledger part is the commit point:

- a rerun skips the inputs the ledger lists (`done_inputs`);
- output parts of a batch killed before its ledger part landed are orphans: `remove_orphans`
  deletes them before a rerun processes those inputs again, so nothing is written twice;
- a retried batch (Ray re-running a task after an actor died) has the same ids, hence the same
  part names: its parts replace the first attempt's instead of adding to them.

A run first takes the stage (`claim`): it writes a fresh owner token, and every commit checks it
(`check_owner`) before each write. Workers of a killed driver can outlive it for a few seconds;
once a rerun has claimed the stage their commits are refused, and the rerun waits `FENCE_GRACE_S`
for a commit already past its check before it scans what is done. `release` ends a clean run.

Parts other writers put in the same dataset (imports, another stage) are never touched: only
names `part-<stage>-<hash>` of this stage are ours.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from toolweave.io import TMP_PREFIX, iter_rows, replace_part, write_part
from toolweave.schemas import Record

STALE_TMP_S = 120.0
LEDGER_ARROW = pa.schema([("id", pa.string())])


class _LedgerRow(Record):
    """One committed input id (the ledger is a dataset of these)."""

    KIND: ClassVar[str] = "ledger"


_LedgerRow.ARROW = LEDGER_ARROW


FENCE_GRACE_S = 5.0
OWNER_FILE = "OWNER"


class StaleRunError(RuntimeError):
    """This worker's run no longer owns the stage (a rerun took it over): its commit is refused."""


def claim(ledger_dir: str | Path, grace_s: float = FENCE_GRACE_S) -> str:
    """Take the stage for a new run; returns its token. Waits `grace_s` when an earlier run did
    not end cleanly (its workers may still be finishing a commit)."""
    d = Path(ledger_dir)
    d.mkdir(parents=True, exist_ok=True)
    owner = d / OWNER_FILE
    previous = owner.exists()
    token = uuid.uuid4().hex
    tmp = d / f"{TMP_PREFIX}{token}"
    tmp.write_text(token)
    os.replace(tmp, owner)
    if previous:
        time.sleep(grace_s)
    return token


def check_owner(ledger_dir: str | Path, token: str | None) -> None:
    if not token:
        return
    try:
        current = (Path(ledger_dir) / OWNER_FILE).read_text()
    except FileNotFoundError:
        current = ""
    if current != token:
        raise StaleRunError(f"stage ledger {ledger_dir}: another run owns this stage now; "
                            f"this (stale) run's commit is refused")


def release(ledger_dir: str | Path, token: str) -> None:
    owner = Path(ledger_dir) / OWNER_FILE
    if owner.exists() and owner.read_text() == token:
        owner.unlink()


def batch_key(stage: str, input_ids: Iterable[str]) -> str:
    h = hashlib.sha256("\n".join(sorted(input_ids)).encode()).hexdigest()[:24]
    return f"{stage}-{h}"


def commit_batch(stage: str, ledger_dir: str | Path, input_ids: list[str],
                 outputs: Mapping[str | Path, tuple[type[Record], list[Record]]], token: str | None = None) -> str:
    """Write `outputs` ({dataset dir: (record class, records)}) then the ledger part; returns the key.
    With `token`, each write first checks that this run still owns the stage."""
    key = batch_key(stage, input_ids)
    for out_dir, (cls, records) in outputs.items():
        check_owner(ledger_dir, token)
        replace_part(records, out_dir, cls, name=key)  # a retry clears kinds its first attempt wrote
    check_owner(ledger_dir, token)
    write_part([_LedgerRow(id=i) for i in input_ids], ledger_dir, _LedgerRow, name=key)
    return key


def done_inputs(ledger_dir: str | Path) -> set[str]:
    return {r["id"] for r in iter_rows(ledger_dir, columns=["id"])}


def committed_keys(ledger_dir: str | Path) -> set[str]:
    d = Path(ledger_dir)
    return {p.stem.removeprefix("part-") for p in d.glob("part-*.parquet")} if d.exists() else set()


def remove_orphans(stage: str, ledger_dir: str | Path, dataset_dirs: Iterable[str | Path]) -> list[Path]:
    """Delete this stage's output parts (and stray temp files) that no ledger entry commits."""
    keep = committed_keys(ledger_dir)
    removed: list[Path] = []
    for d in [Path(ledger_dir), *map(Path, dataset_dirs)]:
        if not d.exists():
            continue
        for p in d.iterdir():
            if p.name.startswith(TMP_PREFIX):
                # a killed writer's temp file; a live writer's is seconds old
                stray = time.time() - p.stat().st_mtime > STALE_TMP_S
            else:
                stray = p.name.startswith(f"part-{stage}-") and p.stem.removeprefix("part-") not in keep
            if stray:
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
