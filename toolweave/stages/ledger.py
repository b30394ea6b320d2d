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
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from toolweave.io import TMP_PREFIX, iter_rows, replace_part, write_part
from toolweave.schemas import LedgerEntry, Record

STALE_TMP_S = 120.0
FENCE_GRACE_S = 5.0
OWNER_FILE = "OWNER"
SETTINGS_FILE = "SETTINGS.json"
RETRY_FILE = "RETRY.json"
IN_FLIGHT = "INFLIGHT-"  # + batch key: the ids of a batch a worker is running (removed at its commit)


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


def commit_batch(stage: str, ledger_dir: str | Path, inputs: list[str] | list[LedgerEntry],
                 outputs: Mapping[str | Path, tuple[type[Record], list[Record]]], token: str | None = None) -> str:
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


def mark_in_flight(ledger_dir: str | Path, key: str, input_ids: list[str]) -> Path:
    """A batch a worker starts: if its process dies, the marker outlives it and names the batch's
    records (the Ray runner isolates the record that kills its worker)."""
    path = Path(ledger_dir) / f"{IN_FLIGHT}{key}.json"
    path.write_text(json.dumps(input_ids))
    return path


def in_flight(ledger_dir: str | Path) -> dict[str, list[str]]:
    """{batch key: input ids} of batches started and not committed (their worker died, or runs still)."""
    d = Path(ledger_dir)
    return {p.stem.removeprefix(IN_FLIGHT): json.loads(p.read_text()) for p in d.glob(f"{IN_FLIGHT}*.json")}


def clear_in_flight(ledger_dir: str | Path) -> None:
    for p in Path(ledger_dir).glob(f"{IN_FLIGHT}*.json"):
        p.unlink(missing_ok=True)


def entries(ledger_dir: str | Path) -> Iterable[LedgerEntry]:
    for row in iter_rows(ledger_dir):
        yield LedgerEntry.from_row(row)


def done_inputs(ledger_dir: str | Path) -> set[str]:
    return {r["id"] for r in iter_rows(ledger_dir, columns=["id"])}


def committed_keys(ledger_dir: str | Path) -> set[str]:
    d = Path(ledger_dir)
    return {p.stem.removeprefix("part-") for p in d.glob("part-*.parquet")} if d.exists() else set()


def verify(stage: str, ledger_dir: str | Path, dataset_dirs: Iterable[str | Path]) -> list[str]:
    """Check every committed batch (see the module doc); returns a line per batch redone."""
    d, dirs = Path(ledger_dir), [Path(p) for p in dataset_dirs]
    redone = []
    for part in sorted(d.glob("part-*.parquet")) if d.exists() else []:
        why = _batch_problem(part, dirs)
        if why:
            part.unlink()
            redone.append(f"{why}: its inputs are done again")
    if redone:
        remove_orphans(stage, d, dirs)
    return redone


def _batch_problem(ledger_part: Path, dirs: list[Path]) -> str | None:
    try:
        entries = pq.ParquetFile(ledger_part)
        listed = (sum(len(o) for o in entries.read(columns=["outputs"])["outputs"].to_pylist())
                  if "outputs" in entries.schema_arrow.names else None)  # a ledger from before it listed them
    except (OSError, pa.ArrowException) as e:
        return f"ledger part {ledger_part} cannot be read ({type(e).__name__}: {e})"
    rows = 0
    for out in dirs:
        part = out / ledger_part.name
        if part.exists():
            try:
                rows += pq.ParquetFile(part).metadata.num_rows
            except (OSError, pa.ArrowException) as e:
                return f"committed part {part} cannot be read ({type(e).__name__}: {e})"
    if listed is not None and rows != listed:
        return f"committed parts {ledger_part.name} hold {rows} rows, the ledger lists {listed}"
    return None


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


class SettingsChanged(ValueError):
    """The run dir holds this stage's records made with other output-shaping settings."""


def check_settings(ledger_dir: str | Path, stage: str, settings: dict) -> None:
    """Stop when committed records were made with other values of the settings that shape the
    output; otherwise record these values. A ledger from before settings were recorded is taken
    as made with these."""
    d = Path(ledger_dir)
    path = d / SETTINGS_FILE
    if committed_keys(d) and path.exists():
        before = json.loads(path.read_text())
        changed = [f"{k} was {before.get(k)!r}, now {settings.get(k)!r}"
                   for k in sorted({*before, *settings}) if before.get(k) != settings.get(k)]
        if changed:
            raise SettingsChanged(f"stage {stage}: this run dir's records were made with other settings "
                                  f"({'; '.join(changed)}): use another run_dir, or move the stage's "
                                  f"datasets and {d} aside")
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(settings, sort_keys=True))
    os.replace(tmp, path)


def forget_failed(ledger_dir: str | Path, dataset_dirs: Iterable[str | Path]) -> int:
    """`--retry-failed`: remove the failed inputs' output rows and ledger entries (so this run does
    them again); returns how many inputs were forgotten."""
    d = Path(ledger_dir)
    plan: dict[str, dict[str, list[str]]] = {}
    for part in sorted(d.glob("part-*.parquet")):
        failed = [r for r in pq.read_table(part).to_pylist() if not r.get("ok", True)]
        if failed:
            plan[part.stem.removeprefix("part-")] = {"inputs": [r["id"] for r in failed],
                                                     "outputs": [o for r in failed for o in r["outputs"]]}
    if plan:
        tmp = d / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(plan))
        os.replace(tmp, d / RETRY_FILE)
    finish_retry(d, dataset_dirs)
    return sum(len(p["inputs"]) for p in plan.values())


def finish_retry(ledger_dir: str | Path, dataset_dirs: Iterable[str | Path]) -> None:
    """Carry out a planned removal (idempotent): output rows first, then the ledger entries, so an
    input is never "not done" while its old rows are still there."""
    d = Path(ledger_dir)
    path = d / RETRY_FILE
    if not path.exists():
        return
    plan = json.loads(path.read_text())
    dirs = [Path(p) for p in dataset_dirs]
    for key, drop in plan.items():
        for out in dirs:
            _drop_rows(out / f"part-{key}.parquet", set(drop["outputs"]))
        _drop_rows(d / f"part-{key}.parquet", set(drop["inputs"]))
    path.unlink()


def _drop_rows(part: Path, ids: set[str]) -> None:
    if not part.exists() or not ids:
        return
    table = pq.read_table(part)
    kept = table.filter(pc.invert(pc.is_in(table["id"], value_set=pa.array(sorted(ids), pa.string()))))
    if kept.num_rows == table.num_rows:
        return
    if kept.num_rows == 0:
        part.unlink()
        return
    tmp = part.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet")
    pq.write_table(kept, tmp)
    os.replace(tmp, part)
