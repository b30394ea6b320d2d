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
for a commit already past its check before it scans what is done. `release` ends a clean run. The
driver renews its token every `RENEW_S` (`OwnerLease`); a token older than `LEASE_S` is a killed
driver's, so its orphaned workers stop committing even when no rerun comes.

Parts other writers put in the same dataset (imports, another stage) are never touched: only
names `part-<stage>-<hash>` of this stage are ours.

Resume is keyed by the settings that shape the output (`Stage.shaped_by`, kept in `SETTINGS.json`):
a rerun with other values stops with a one-line message naming them (`check_settings`), rather than
calling records made another way "done". Each ledger entry says whether its input failed and which
records it wrote, so `--retry-failed` (`forget_failed`) can remove exactly the failed inputs' rows
and entries; the rerun then does them again, once. That removal is planned in `RETRY.json` first
and finished by the next run if this one is killed midway (`finish_retry`).

Checksums: each output part's sha256 is taken from the bytes as they are written, and the batch's
ledger part carries them in its Parquet metadata (`toolweave.parts`: {dataset name: sha256}) with a
sha256 of its own rows and that map (`toolweave.sha256`). That one covers what a rerun reads from
the ledger part (written without min/max statistics, no copy of an id lies outside it); bytes that
change nothing read back, the writer's name in the footer say, are not checked. Before a rerun
trusts what is committed, `verify` checks both: a batch whose ledger part or any output part
differs (a cut, a flipped bit, bytes overwritten) is named, one line per damaged file, and loses its
ledger part, so all its output parts are orphans (removed) and its inputs are done again, once. A
ledger part from before checksums is checked by its footers and row counts only, said once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from toolweave import io
from toolweave.io import TMP_PREFIX, iter_rows
from toolweave.schemas import LedgerEntry, Record

STALE_TMP_S = 120.0
FENCE_GRACE_S = 5.0
OWNER_FILE = "OWNER"
RENEW_S = 10.0  # the driver rewrites its owner token this often (OwnerLease)
LEASE_S = 60.0  # a token not rewritten for this long is a gone driver's: its workers' commits are refused
SETTINGS_FILE = "SETTINGS.json"
RETRY_FILE = "RETRY.json"
IN_FLIGHT = "INFLIGHT-"  # + batch key: the ids of a batch a worker is running (removed at its commit)
PARTS_META = b"toolweave.parts"  # ledger part metadata: {dataset name: sha256 of its part file}
HASH_META = b"toolweave.sha256"  # ledger part metadata: sha256 of its rows and the parts map

Location = str | Path  # a local path or a URI (toolweave.io)
log = logging.getLogger("toolweave.stages")


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
    """Refuse a commit of a run that no longer owns the stage: another run claimed it, it was given
    up (a clean stop), or its driver stopped renewing the claim (`OwnerLease`: the driver is gone)."""
    if not token:
        return
    owner = io.join(ledger_dir, OWNER_FILE)
    current = io.read_text(owner) or ""
    if current != token:
        raise StaleRunError(f"stage ledger {io.location(ledger_dir)}: another run owns this stage now (or "
                            f"this one stopped); this (stale) run's commit is refused")
    age = time.time() - (io.mtime(owner) or time.time())
    if age > LEASE_S:
        raise StaleRunError(f"stage ledger {io.location(ledger_dir)}: this run's driver has not renewed its "
                            f"claim for {age:.0f} s (it is gone); this orphaned worker's commit is refused")


class OwnerLease:
    """The driver's side of a claim: rewrites the owner token every `every_s` seconds from a thread,
    so that workers can tell a live driver from a killed one (`check_owner`). It stops by itself once
    the token is not this run's any more (released, or claimed by a rerun)."""

    def __init__(self, ledger_dir: Location, token: str, every_s: float = RENEW_S):
        self.ledger_dir, self.token, self.every_s = ledger_dir, token, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="toolweave-owner-lease", daemon=True)

    def start(self) -> "OwnerLease":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _renew(self) -> None:
        owner = io.join(self.ledger_dir, OWNER_FILE)
        while not self._stop.wait(self.every_s):
            try:
                if io.read_text(owner) != self.token:
                    return
                io.write_text(owner, self.token)
            except OSError as e:  # a store's hiccup: the next renewal may succeed, well within LEASE_S
                log.warning("stage ledger %s: renewing the claim failed (%s)", io.location(self.ledger_dir), e)


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
    parts: dict[str, str] = {}
    for out_dir, (cls, records) in outputs.items():
        check_owner(ledger_dir, token)
        digest = io.write_hashed_part(io.to_table(records, cls), out_dir, key)  # a retry clears kinds
        if digest:  # its first attempt wrote
            parts[dataset_name(out_dir)] = digest
    check_owner(ledger_dir, token)
    _write_ledger_part(ledger_dir, key, io.to_table(entries, LedgerEntry), parts)
    return key


def dataset_name(directory: Location) -> str:
    """How a ledger entry names an output dataset: its directory's name in the run dir."""
    return io.location(directory).rstrip("/").rsplit("/", 1)[-1]


def _content_hash(rows: list[dict], parts: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps({"entries": rows, "parts": dict(parts)}, sort_keys=True,
                                     ensure_ascii=False).encode()).hexdigest()


def _write_ledger_part(ledger_dir: Location, key: str, table: pa.Table, parts: Mapping[str, str]) -> None:
    meta = {PARTS_META: json.dumps(dict(parts), sort_keys=True).encode(),
            HASH_META: _content_hash(table.to_pylist(), parts).encode()}
    # no min/max statistics: every copy of an id is then one its checksum covers
    io.write_hashed_part(table.replace_schema_metadata(meta), ledger_dir, key, write_statistics=False)


class LedgerDamage(ValueError):
    """A ledger part that cannot be read or does not match its own checksum."""


def read_ledger_part(path: Location) -> tuple[list[dict], dict[str, str] | None]:
    """A ledger part's rows and its {dataset name: part sha256} map, checked against the part's own
    checksum (the map is None for a part from before checksums); LedgerDamage names what is wrong."""
    try:
        table = _read_table(path)
        rows = table.to_pylist()
    except (OSError, ValueError, pa.ArrowException) as e:  # UnicodeDecodeError is a ValueError
        raise LedgerDamage(f"ledger entry {path} cannot be read ({type(e).__name__}: {one_line(e, path)})") from None
    meta = table.schema.metadata or {}
    if HASH_META not in meta:
        return rows, None
    try:
        parts = json.loads(meta.get(PARTS_META, b"").decode())
        intact = isinstance(parts, dict) and _content_hash(rows, parts) == meta[HASH_META].decode()
    except ValueError:
        intact = False
    if not intact:
        raise LedgerDamage(f"ledger entry {path} is damaged (its content does not match its checksum)")
    return rows, parts


def one_line(e: BaseException, path: Location | None = None) -> str:
    """An exception's text on one line, shortened; the file's path (the line names it) left out."""
    text = str(e) if path is None else str(e).replace(io.filesystem(path)[1], "the file")
    return " ".join(text.split())[:300]


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


def ledger_parts(ledger_dir: Location) -> list[io.Entry]:
    return [e for e in io.list_files(ledger_dir) if e.name.startswith("part-") and e.name.endswith(".parquet")]


def _key(part_name: str) -> str:
    return part_name.removeprefix("part-").removesuffix(".parquet")


def committed_keys(ledger_dir: Location) -> set[str]:
    return {_key(e.name) for e in ledger_parts(ledger_dir)}


def _read_table(path: Location) -> pa.Table:
    fs, inner = io.filesystem(path)
    return pq.read_table(inner, filesystem=fs)


def verify(stage: str, ledger_dir: Location, dataset_dirs: Iterable[Location],
           report: Callable[[str], None] = lambda line: None) -> list[str]:
    """Check every committed batch (see the module doc); returns a line per damaged file, each ending
    in what is done about it. Each line goes to `report` before its ledger entry is deleted: a run
    killed in between names the damage again on the next run, never not at all."""
    dirs = list(dataset_dirs)
    redone = []
    unverified = 0
    for part in ledger_parts(ledger_dir):
        problems, checked = batch_problems(part, dirs)
        unverified += not checked
        if problems:
            for why in problems:
                line = f"{why}: its batch's parts are removed and its inputs done again"
                report(line)
                redone.append(line)
            io.delete(part.path)
    if unverified:
        report(f"{unverified} committed batches in {io.location(ledger_dir)} predate checksums: "
               f"checked by their footers and row counts only")
    if redone:
        remove_orphans(stage, ledger_dir, dirs)
    return redone


def batch_problems(ledger_part: io.Entry, dirs: list[Location]) -> tuple[list[str], bool]:
    """What is wrong with one committed batch (one line per damaged file; none when it is intact),
    and whether it could be checked by checksum (False for a batch from before checksums)."""
    try:
        rows, parts = read_ledger_part(ledger_part.path)
    except LedgerDamage as e:
        return [str(e)], True
    if parts is None:
        return _unhashed_problems(ledger_part.name, rows, dirs), False
    problems = []
    seen = set()
    for out in dirs:
        name = dataset_name(out)
        seen.add(name)
        path = io.join(out, ledger_part.name)
        expected = parts.get(name)
        if expected is None:
            if io.exists(path):
                problems.append(f"committed part {path} is not listed by its ledger entry")
            continue
        actual = io.sha256_of(path)
        if actual is None:
            problems.append(f"committed part {path} is missing (its ledger entry lists it)")
        elif actual != expected:
            problems.append(f"committed part {path} is damaged: {_damage(path, rows)}")
    problems += [f"committed part {io.join(name, ledger_part.name)} of dataset {name} is missing "
                 f"(its ledger entry lists it)" for name in sorted(set(parts) - seen)]
    return problems, True


def _damage(path: Location, rows: list[dict]) -> str:
    """Why a part's bytes differ from those committed, as far as a reader can tell."""
    try:
        table = _read_table(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        return f"sha256 mismatch; it cannot be read ({type(e).__name__}: {one_line(e, path)})"
    listed = {o for r in rows for o in r.get("outputs") or []}
    ids = set(table.column("id").to_pylist()) if "id" in table.column_names else set()
    if listed and ids - listed:
        return f"sha256 mismatch; it holds an id its ledger entry does not list: {sorted(ids - listed)[0]!r}"
    return f"sha256 mismatch; {table.num_rows} rows read"


def _unhashed_problems(part_name: str, rows: list[dict], dirs: list[Location]) -> list[str]:
    """A batch from before checksums: every output part's footer must read, and their rows add up to
    the outputs the ledger lists (when it lists them)."""
    listed = sum(len(r.get("outputs") or []) for r in rows) if rows and "outputs" in rows[0] else None
    found = 0
    for out in dirs:
        part = io.join(out, part_name)
        if io.exists(part):
            try:
                found += io.parquet_file(part).metadata.num_rows
            except (OSError, pa.ArrowException) as e:
                return [f"committed part {part} cannot be read ({type(e).__name__}: {one_line(e, part)})"]
    if listed is not None and found != listed:
        return [f"committed parts {part_name} hold {found} rows, the ledger lists {listed}"]
    return []


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
    output; otherwise record these values. A ledger from before settings were recorded, or before
    one of them was, is taken as made with these."""
    path = io.join(ledger_dir, SETTINGS_FILE)
    before_text = io.read_text(path) if committed_keys(ledger_dir) else None
    if before_text is not None:
        before = json.loads(before_text)
        # a setting a newer version keys resume by, absent from an older SETTINGS.json: taken as these
        changed = [f"{k} was {before.get(k)!r}, now {settings.get(k)!r}"
                   for k in sorted({*before, *settings}) if k in before and before.get(k) != settings.get(k)]
        if changed:
            raise SettingsChanged(f"stage {stage}: this run dir's records were made with other settings "
                                  f"({'; '.join(changed)}): use another run_dir, or move the stage's "
                                  f"datasets and {io.location(ledger_dir)} aside")
    io.write_text(path, json.dumps(settings, sort_keys=True))


def forget_failed(ledger_dir: Location, dataset_dirs: Iterable[Location]) -> int:
    """`--retry-failed`: remove the failed inputs' output rows and ledger entries (so this run does
    them again); returns how many inputs were forgotten."""
    plan: dict[str, dict[str, list[str]]] = {}
    for part in ledger_parts(ledger_dir):
        failed = [r for r in _read_table(part.path).to_pylist() if not r.get("ok", True)]
        if failed:
            plan[_key(part.name)] = {"inputs": [r["id"] for r in failed],
                                     "outputs": [o for r in failed for o in r["outputs"]]}
    if plan:
        io.write_text(io.join(ledger_dir, RETRY_FILE), json.dumps(plan))
    finish_retry(ledger_dir, dataset_dirs)
    return sum(len(p["inputs"]) for p in plan.values())


def finish_retry(ledger_dir: Location, dataset_dirs: Iterable[Location]) -> None:
    """Carry out a planned removal (idempotent): output rows first, then the ledger entries (with the
    new parts' checksums), so an input is never "not done" while its old rows are still there. A
    batch whose parts match neither their checksums nor a finished removal is left to `verify`."""
    path = io.join(ledger_dir, RETRY_FILE)
    text = io.read_text(path)
    if text is None:
        return
    plan = json.loads(text)
    dirs = list(dataset_dirs)
    for key, drop in plan.items():
        ledger_part = io.join(ledger_dir, f"part-{key}.parquet")
        if not io.exists(ledger_part):
            continue
        try:
            rows, parts = read_ledger_part(ledger_part)
        except LedgerDamage:
            continue  # verify names it and does its whole batch again
        outputs, inputs = set(drop["outputs"]), set(drop["inputs"])
        new_parts: dict[str, str] = {}
        for out in dirs:
            part = io.join(out, f"part-{key}.parquet")
            expected = (parts or {}).get(dataset_name(out))
            if expected and io.sha256_of(part) != expected and not _dropped_already(part, outputs):
                break  # damaged: verify names it
            digest = _drop_rows(out, key, outputs)
            if digest:
                new_parts[dataset_name(out)] = digest
        else:
            kept = [r for r in rows if r["id"] not in inputs]
            if not kept:
                io.delete(ledger_part)
            elif parts is None:  # a ledger part from before checksums stays as it was, less the rows
                _drop_rows(ledger_dir, key, inputs)
            elif kept != rows or new_parts != parts:
                _write_ledger_part(ledger_dir, key, pa.Table.from_pylist(kept, schema=LedgerEntry.ARROW), new_parts)
    io.delete(path)


def _dropped_already(part: Location, ids: set[str]) -> bool:
    """A part a killed earlier removal already rewrote: readable, without the rows to drop."""
    try:
        return not ids & set(_read_table(part).column("id").to_pylist())
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return False


def _drop_rows(directory: Location, key: str, ids: set[str]) -> str | None:
    """Remove the rows `ids` from a batch's part; returns the sha256 of what is left (None: no part)."""
    part = io.join(directory, f"part-{key}.parquet")
    if not io.exists(part):
        return None
    if not ids:
        return io.sha256_of(part)
    table = _read_table(part)
    kept = table.filter(pc.invert(pc.is_in(table["id"], value_set=pa.array(sorted(ids), pa.string()))))
    if kept.num_rows == table.num_rows:
        return io.sha256_of(part)
    return io.write_hashed_part(kept, directory, key)  # whole: tmp + rename, or one PUT
