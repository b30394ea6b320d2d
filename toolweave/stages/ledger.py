"""Exactly-once commits of per-record stages: a batch's outputs, then its ledger entry.

A batch of inputs is committed by writing each output dataset's part file (atomic: tmp + rename
locally, one PUT in an object store) under one name derived from the batch's input ids, and *then*
a ledger part listing those ids. Every file operation goes through `toolweave.io`, so the run dir
may be a local/NFS path or an `s3://` URI (write-then-marker: the ledger part is the marker).
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

Resume is keyed by the settings that shape the output (`Stage.shaped_by`, kept in `SETTINGS.json`):
a rerun with other values stops with a one-line message naming them (`check_settings`), rather than
calling records made another way "done". Each ledger entry says whether its input failed and which
records it wrote, so `--retry-failed` (`forget_failed`) can remove exactly the failed inputs' rows
and entries; the rerun then does them again, once. That removal is planned in `RETRY.json` first
and finished by the next run if this one is killed midway (`finish_retry`).

Before a rerun trusts what is committed, `verify` reads each batch's ledger part and its output
parts' footers and compares their rows with what the ledger entries list: a batch that fails
(a truncated part, say) loses its ledger part, so its outputs are orphans and its inputs are redone,
and the run says which file it was.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from toolweave import io
from toolweave.io import TMP_PREFIX, iter_rows, replace_part, write_part
from toolweave.schemas import LedgerEntry, Record

STALE_TMP_S = 120.0
FENCE_GRACE_S = 5.0
OWNER_FILE = "OWNER"
SETTINGS_FILE = "SETTINGS.json"
RETRY_FILE = "RETRY.json"
IN_FLIGHT = "INFLIGHT-"  # + batch key: the ids of a batch a worker is running (removed at its commit)

Location = str | Path  # a local path or a URI (toolweave.io)


class StaleRunError(RuntimeError):
    """This worker's run no longer owns the stage (a rerun took it over): its commit is refused."""


def claim(ledger_dir: Location, grace_s: float = FENCE_GRACE_S) -> str:
    """Take the stage for a new run; returns its token. Waits `grace_s` when an earlier run did
    not end cleanly (its workers may still be finishing a commit)."""
    owner = io.join(ledger_dir, OWNER_FILE)
    previous = io.exists(owner)
    token = uuid.uuid4().hex
    io.write_text(owner, token)  # tmp + rename locally, one PUT in an object store
    if previous:
        time.sleep(grace_s)
    return token


def check_owner(ledger_dir: Location, token: str | None) -> None:
    if not token:
        return
    current = io.read_text(io.join(ledger_dir, OWNER_FILE)) or ""
    if current != token:
        raise StaleRunError(f"stage ledger {io.location(ledger_dir)}: another run owns this stage now; "
                            f"this (stale) run's commit is refused")


def release(ledger_dir: Location, token: str) -> None:
    owner = io.join(ledger_dir, OWNER_FILE)
    if io.read_text(owner) == token:
        io.delete(owner)


def batch_key(stage: str, input_ids: Iterable[str]) -> str:
    h = hashlib.sha256("\n".join(sorted(input_ids)).encode()).hexdigest()[:24]
    return f"{stage}-{h}"


def commit_batch(stage: str, ledger_dir: Location, inputs: list[str] | list[LedgerEntry],
                 outputs: Mapping[Location, tuple[type[Record], list[Record]]], token: str | None = None) -> str:
    """Write `outputs` ({dataset dir: (record class, records)}) then the ledger part listing `inputs`
    (ids, or entries saying whether each failed); returns the key. With `token`, each write first
    checks that this run still owns the stage."""
    entries = [e if isinstance(e, LedgerEntry) else LedgerEntry(id=e) for e in inputs]
    key = batch_key(stage, [e.id for e in entries])
    for out_dir, (cls, records) in outputs.items():
        check_owner(ledger_dir, token)
        replace_part(records, out_dir, cls, name=key)  # a retry clears kinds its first attempt wrote
    check_owner(ledger_dir, token)
    write_part(entries, ledger_dir, LedgerEntry, name=key)
    return key


def mark_in_flight(ledger_dir: Location, key: str, input_ids: list[str]) -> str:
    """A batch a worker starts: if its process dies, the marker outlives it and names the batch's
    records (the Ray runner isolates the record that kills its worker). Remove it with `io.delete`."""
    path = io.join(ledger_dir, f"{IN_FLIGHT}{key}.json")
    io.write_text(path, json.dumps(input_ids))
    return path


def _in_flight_files(ledger_dir: Location) -> list[io.Entry]:
    return [e for e in io.list_files(ledger_dir) if e.name.startswith(IN_FLIGHT) and e.name.endswith(".json")]


def in_flight(ledger_dir: Location) -> dict[str, list[str]]:
    """{batch key: input ids} of batches started and not committed (their worker died, or runs still)."""
    found = {}
    for e in _in_flight_files(ledger_dir):
        text = io.read_text(e.path)
        if text is not None:  # removed by its commit meanwhile
            found[e.name.removeprefix(IN_FLIGHT).removesuffix(".json")] = json.loads(text)
    return found


def clear_in_flight(ledger_dir: Location) -> None:
    for e in _in_flight_files(ledger_dir):
        io.delete(e.path)


def entries(ledger_dir: Location) -> Iterable[LedgerEntry]:
    for row in iter_rows(ledger_dir):
        yield LedgerEntry.from_row(row)


def done_inputs(ledger_dir: Location) -> set[str]:
    return {r["id"] for r in iter_rows(ledger_dir, columns=["id"])}


def _ledger_parts(ledger_dir: Location) -> list[io.Entry]:
    return [e for e in io.list_files(ledger_dir) if e.name.startswith("part-") and e.name.endswith(".parquet")]


def _key(part_name: str) -> str:
    return part_name.removeprefix("part-").removesuffix(".parquet")


def committed_keys(ledger_dir: Location) -> set[str]:
    return {_key(e.name) for e in _ledger_parts(ledger_dir)}


def _read_table(path: Location) -> pa.Table:
    fs, inner = io.filesystem(path)
    return pq.read_table(inner, filesystem=fs)


def verify(stage: str, ledger_dir: Location, dataset_dirs: Iterable[Location],
           report: Callable[[str], None] = lambda line: None) -> list[str]:
    """Check every committed batch (see the module doc); returns a line per batch redone. Each
    line goes to `report` before its ledger entry is deleted: a run killed in between names the
    damage again on the next run, never not at all."""
    dirs = list(dataset_dirs)
    redone = []
    for part in _ledger_parts(ledger_dir):
        why = _batch_problem(part, dirs)
        if why:
            line = f"{why}: its inputs are done again"
            report(line)
            io.delete(part.path)
            redone.append(line)
    if redone:
        remove_orphans(stage, ledger_dir, dirs)
    return redone


def _batch_problem(ledger_part: io.Entry, dirs: list[Location]) -> str | None:
    try:
        entries = io.parquet_file(ledger_part.path)
        listed = (sum(len(o) for o in entries.read(columns=["outputs"])["outputs"].to_pylist())
                  if "outputs" in entries.schema_arrow.names else None)  # a ledger from before it listed them
    except (OSError, pa.ArrowException) as e:
        return f"ledger part {ledger_part.path} cannot be read ({type(e).__name__}: {e})"
    rows = 0
    for out in dirs:
        part = io.join(out, ledger_part.name)
        if io.exists(part):
            try:
                rows += io.parquet_file(part).metadata.num_rows
            except (OSError, pa.ArrowException) as e:
                return f"committed part {part} cannot be read ({type(e).__name__}: {e})"
    if listed is not None and rows != listed:
        return f"committed parts {ledger_part.name} hold {rows} rows, the ledger lists {listed}"
    return None


def remove_orphans(stage: str, ledger_dir: Location, dataset_dirs: Iterable[Location]) -> list[str | Path]:
    """Delete this stage's output parts (and stray temp files) that no ledger entry commits."""
    keep = committed_keys(ledger_dir)
    removed: list[str | Path] = []
    for d in [ledger_dir, *dataset_dirs]:
        for e in io.list_files(d):
            if e.name.startswith(TMP_PREFIX):
                # a killed writer's temp file; a live writer's is seconds old
                stray = e.mtime is not None and time.time() - e.mtime > STALE_TMP_S
            else:
                stray = e.name.startswith(f"part-{stage}-") and _key(e.name) not in keep
            if stray:
                io.delete(e.path)
                removed.append(e.path)
    return removed


class SettingsChanged(ValueError):
    """The run dir holds this stage's records made with other output-shaping settings."""


def check_settings(ledger_dir: Location, stage: str, settings: dict) -> None:
    """Stop when committed records were made with other values of the settings that shape the
    output; otherwise record these values. A ledger from before settings were recorded is taken
    as made with these."""
    path = io.join(ledger_dir, SETTINGS_FILE)
    before_text = io.read_text(path) if committed_keys(ledger_dir) else None
    if before_text is not None:
        before = json.loads(before_text)
        changed = [f"{k} was {before.get(k)!r}, now {settings.get(k)!r}"
                   for k in sorted({*before, *settings}) if before.get(k) != settings.get(k)]
        if changed:
            raise SettingsChanged(f"stage {stage}: this run dir's records were made with other settings "
                                  f"({'; '.join(changed)}): use another run_dir, or move the stage's "
                                  f"datasets and {io.location(ledger_dir)} aside")
    io.write_text(path, json.dumps(settings, sort_keys=True))


def forget_failed(ledger_dir: Location, dataset_dirs: Iterable[Location]) -> int:
    """`--retry-failed`: remove the failed inputs' output rows and ledger entries (so this run does
    them again); returns how many inputs were forgotten."""
    plan: dict[str, dict[str, list[str]]] = {}
    for part in _ledger_parts(ledger_dir):
        failed = [r for r in _read_table(part.path).to_pylist() if not r.get("ok", True)]
        if failed:
            plan[_key(part.name)] = {"inputs": [r["id"] for r in failed],
                                     "outputs": [o for r in failed for o in r["outputs"]]}
    if plan:
        io.write_text(io.join(ledger_dir, RETRY_FILE), json.dumps(plan))
    finish_retry(ledger_dir, dataset_dirs)
    return sum(len(p["inputs"]) for p in plan.values())


def finish_retry(ledger_dir: Location, dataset_dirs: Iterable[Location]) -> None:
    """Carry out a planned removal (idempotent): output rows first, then the ledger entries, so an
    input is never "not done" while its old rows are still there."""
    path = io.join(ledger_dir, RETRY_FILE)
    text = io.read_text(path)
    if text is None:
        return
    plan = json.loads(text)
    dirs = list(dataset_dirs)
    for key, drop in plan.items():
        for out in dirs:
            _drop_rows(io.join(out, f"part-{key}.parquet"), set(drop["outputs"]))
        _drop_rows(io.join(ledger_dir, f"part-{key}.parquet"), set(drop["inputs"]))
    io.delete(path)


def _drop_rows(part: Location, ids: set[str]) -> None:
    if not ids or not io.exists(part):
        return
    table = _read_table(part)
    kept = table.filter(pc.invert(pc.is_in(table["id"], value_set=pa.array(sorted(ids), pa.string()))))
    if kept.num_rows == table.num_rows:
        return
    if kept.num_rows == 0:
        io.delete(part)
        return
    buf = pa.BufferOutputStream()
    pq.write_table(kept, buf)
    io.write_bytes(part, buf.getvalue().to_pybytes())  # whole: tmp + rename, or one PUT
