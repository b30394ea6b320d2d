"""`toolweave verify-run RUN_DIR`: check a whole run dir offline, changing nothing, and say what a
rerun would redo. Every stage ledger under `RUN_DIR/_ledger` is checked as a resume checks it
(`ledger.batch_problems`: checksums of the ledger entries and of their output parts), uncommitted
parts a rerun would remove are listed, and every other Parquet part (imports, driver stages'
outputs: no ledger covers them) is read whole, so damage there is named too. A local path or a URI.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from toolweave import io
from toolweave.stages import ledger

LEDGER_DIR = "_ledger"
_LEDGER_PART = re.compile(r"^part-(?P<stage>.+)-[0-9a-f]{24}\.parquet$")


@dataclass
class RunCheck:
    damaged: list[str] = field(default_factory=list)  # one line per damaged file, with what a rerun does
    notes: list[str] = field(default_factory=list)  # not damage: uncommitted parts, batches without checksums
    batches: int = 0  # committed batches checked
    unverified: int = 0  # of them, from before checksums
    parts_read: int = 0  # parts outside any ledger, read whole


def check_run(run_dir: io.Location) -> RunCheck:
    result = RunCheck()
    datasets = [d.path for d in io.list_dirs(run_dir) if d.name not in (LEDGER_DIR, "logs")]
    stages = io.list_dirs(io.join(run_dir, LEDGER_DIR))
    for stage in stages:
        _check_stage(stage.name, stage.path, datasets, result)
    names = {s.name for s in stages}
    for dataset in datasets:
        for part in io.part_files(dataset):
            m = _LEDGER_PART.match(io.location(part).rsplit("/", 1)[-1])
            if m and m.group("stage") in names:
                continue  # checked with its stage's ledger
            result.parts_read += 1
            try:
                io.parquet_file(part).read()
            except (OSError, ValueError, pa.ArrowException) as e:
                result.damaged.append(f"part {io.location(part)} cannot be read ({type(e).__name__}: "
                                      f"{ledger.one_line(e, part)}): no stage ledger covers it, so no rerun "
                                      f"redoes it; write it again from its source")
    return result


def _check_stage(stage: str, ledger_dir: io.Location, datasets: list[io.Location], result: RunCheck) -> None:
    parts = ledger.ledger_parts(ledger_dir)
    for part in parts:
        problems, checked = ledger.batch_problems(part, datasets)
        result.batches += 1
        result.unverified += not checked
        result.damaged += [f"{stage}: {why}: a rerun removes its batch's parts and does its inputs again"
                           for why in problems]
    committed = {p.name for p in parts}
    for dataset in datasets:
        for e in io.list_files(dataset):
            if e.name.startswith(f"part-{stage}-") and e.name not in committed:
                result.notes.append(f"{stage}: part {io.location(e.path)} was never committed (a stopped run's): "
                                    f"a rerun removes it and does its inputs")
    try:
        started = ledger.in_flight(ledger_dir)
    except ValueError:  # a marker cut short: a rerun removes markers unread
        started = {"(unreadable marker)": []}
    for key, ids in started.items():
        result.notes.append(f"{stage}: batch {key} of {len(ids)} inputs was started and not committed: "
                            f"a rerun does them")
    if io.exists(io.join(ledger_dir, ledger.RETRY_FILE)):
        result.notes.append(f"{stage}: a --retry-failed removal was stopped midway: a rerun finishes it")
    if io.exists(io.join(ledger_dir, ledger.OWNER_FILE)):
        result.notes.append(f"{stage}: a run holds this stage (running now, or stopped without a clean end)")


def verify_run_command(run_dir: str, emit: Callable[[str], None] = print) -> int:
    """Print what is damaged and what a rerun would do; 0 when nothing is damaged, else 1."""
    if not io.exists(run_dir):
        emit(f"toolweave verify-run: no run dir at {io.location(run_dir)}")
        return 2
    result = check_run(run_dir)
    for line in [*result.damaged, *result.notes]:
        emit(line)
    checked = f"{result.batches} committed batches"
    if result.unverified:
        checked += f" ({result.unverified} from before checksums: footers and row counts only)"
    verdict = (f"{len(result.damaged)} damaged files: a rerun redoes their batches" if result.damaged
               else "no damage")
    emit(f"{io.location(run_dir)}: {checked} and {result.parts_read} other parts checked; {verdict}")
    return 1 if result.damaged else 0
