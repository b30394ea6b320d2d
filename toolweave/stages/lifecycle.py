"""The life of a per-record stage, the same for every runner (Ray Data in `ray_jobs/pipeline.py`,
asyncio in `toolweave/stages/local.py`): prepare, claim the stage, sweep orphans, scan the inputs,
stream the records through the runner's `execute` while showing progress, sweep again, finish,
release, and write the summary. A runner supplies only `execute`: the rows in, outcomes out.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolweave import io, secrets
from toolweave.config import RunConfig
from toolweave.schemas import RecordOutcome, Reject
from toolweave.stages import ledger
from toolweave.stages.base import Progress, StageIO
from toolweave.stage_context import stage_context
from toolweave.stages.declaration import Runtime, Stage, Summary
from toolweave.stages.display import ProgressView, console_line
from toolweave.stages.scan import InputScan, scan_inputs

log = logging.getLogger("toolweave.stages")


@dataclass
class RecordJob:
    """One run of a per-record stage, as its runner sees it: the rows of `io.inputs` whose ids are
    not in `scan.skip_ids` go through `stage.worker`, committed batch by batch to `io`."""

    cfg: RunConfig
    stage: Stage
    io: StageIO
    scan: InputScan
    redone: list[str]  # damaged files of committed batches found on resume (named), done again by this run
    lease: ledger.OwnerLease  # renews this run's claim while it runs


def stage_io(cfg: RunConfig, stage: Stage) -> StageIO:
    assert stage.worker is not None, f"{stage.name} is not a per-record stage"
    out = stage.writes[0]
    assert out.kind is not None
    # generated instructions land in instructions_raw/ until dedupe; their rejects beside the final set
    return StageIO(stage=stage.name, inputs=[cfg.path(stage.input_dataset(cfg))], output=cfg.path(out.name),
                   output_cls=out.kind, rejects=cfg.path(f"{out.name.removesuffix('_raw')}_rejects"),
                   ledger=cfg.path("_ledger", stage.name))


class RecordRunner(Runtime):
    """A runtime whose per-record stages go through this lifecycle (resume scan, ledger claim, progress,
    summary); a subclass runs a job's records in `outcomes` (Ray Data: `ray_jobs.pipeline.RayRuntime`;
    asyncio in this process: `toolweave.stages.local.LocalRuntime`)."""

    name = ""  # the summary's `runner`

    def outcomes(self, job: RecordJob) -> Iterable[RecordOutcome | dict[str, Any]]:
        """Run the job's records (called only when some input is left); their outcomes as they finish."""
        raise NotImplementedError

    def run_records(self, cfg: RunConfig, stage: Stage) -> Summary:
        """Run a per-record stage; its summary."""
        notes = stage.prepare(stage_context(cfg, stage)) if stage.prepare is not None else {}
        job = begin(cfg, stage)
        try:
            progress = Progress(stage=stage.name, total=job.scan.todo, skipped=job.scan.already_done)
            with ProgressView(progress, enabled=cfg.run.show_progress) as view:
                for outcome in self.outcomes(job) if job.scan.todo else ():
                    progress.add(outcome)
                    if not (outcome["ok"] if isinstance(outcome, dict) else outcome.ok):
                        view.failure(outcome)
                    view.update()
            if job.scan.todo:  # parts a killed earlier run's workers wrote after this run's start-up sweep
                ledger.remove_orphans(stage.name, job.io.ledger, job.io.outputs())
            if stage.finish is not None:
                notes.update(stage.finish(stage_context(cfg, stage)))
        finally:
            job.lease.stop()  # a run that stops here stops renewing: its workers' commits are refused
        ledger.release(job.io.ledger, job.io.run_token)
        return write_summary(cfg, stage.name, progress, {**notes, "filtered": job.scan.filtered,
                                                         "duplicate_ids": len(job.scan.duplicates),
                                                         "redone_batches": job.redone, "runner": self.name})


def begin(cfg: RunConfig, stage: Stage) -> RecordJob:
    """Before a (re)run: check the inputs exist, take the stage (fencing off a killed run's workers),
    remove that run's orphans, check the settings that shape the output, reject duplicate ids, scan."""
    io_ = stage_io(cfg, stage)
    check_inputs(stage, io_)
    ledger.check_settings(io_.ledger, stage.name, stage.shaping_settings(cfg))
    io_.run_token = ledger.claim(io_.ledger)
    # renewed from now on: checking a big run dir's checksums may take longer than a lease
    lease = ledger.OwnerLease(io_.ledger, io_.run_token).start()
    try:
        return _resume(cfg, stage, io_, lease)
    except BaseException:
        lease.stop()
        raise


def _resume(cfg: RunConfig, stage: Stage, io_: StageIO, lease: ledger.OwnerLease) -> RecordJob:
    ledger.remove_orphans(stage.name, io_.ledger, io_.outputs())
    ledger.clear_in_flight(io_.ledger)  # a killed run's batches: their parts were orphans, just removed
    ledger.finish_retry(io_.ledger, io_.outputs())  # a killed --retry-failed run's removal
    def report(line: str) -> None:
        log.warning("%s: %s", stage.name, line)
        console_line(f"{stage.name}: {line}")
    redone = ledger.verify(stage.name, io_.ledger, io_.outputs(), report)
    if cfg.run.retry_failed:
        ledger.forget_failed(io_.ledger, io_.outputs())
    scan = scan_inputs(io_, _selector(cfg, stage), list(stage.select_columns), cfg.run.limit if stage.limited else None)
    # one fixed part a rerun rewrites (outside the ledger's `part-<stage>-*` names, so it is no orphan)
    io.replace_part(scan.duplicates, io_.rejects, Reject, name=f"duplicates-of-{stage.name}")
    return RecordJob(cfg, stage, io_, scan, redone, lease)


def _selector(cfg: RunConfig, stage: Stage) -> Callable[[dict[str, Any]], bool] | None:
    select = stage.select
    return None if select is None else (lambda row: select(cfg, row))


def check_inputs(stage: Stage, io_: StageIO) -> None:
    if not stage.inputs_optional and not any(io.part_files(p) for p in io_.inputs):
        names = ", ".join(str(p) for p in io_.inputs)
        raise ValueError(f"stage {stage.name}: no input dataset at {names}; run the stage that "
                         f"writes it first (or point run_dir at a run that has it)")


def write_summary(cfg: RunConfig, stage: str, progress: Progress, extra: dict[str, Any] | None = None) -> Summary:
    """The end-of-stage summary, also written as JSON beside the stage's dataset."""
    summary = progress.summary(cfg.llm.prices, cfg.llm.endpoint("default").model)
    summary.update(extra or {})
    return write_summary_file(cfg.path(f"{stage}_summary.json"), summary)


def write_summary_file(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The one writer of summaries (a stage's, the run's), to a path or s3:// URI: redacted of every
    configured secret first (a note may quote a URL or an error holding a key); returns what was
    written, for the terminal."""
    summary = secrets.redact_obj(json.loads(json.dumps(summary, default=str)))
    io.write_text(path, json.dumps(summary, indent=2))
    return summary
