"""Run a per-record stage in this process on asyncio (no Ray): the same lifecycle, workers, batches
and exactly-once commits as the Ray pipeline. Used by unit tests and for small runs."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from toolweave import io
from toolweave.config import RunConfig
from toolweave.llm.types import ChatModel
from toolweave.schemas import RecordOutcome
from toolweave.stages.base import commit, process_batch
from toolweave.stages.declaration import Stage, Summary
from toolweave.stages.lifecycle import RecordJob, run_record_stage


def run_local(cfg: RunConfig, stage: Stage, clients: dict[str, ChatModel], response_cache: Any = None) -> Summary:
    """One per-record stage here, its LLM calls through `clients`; returns (and writes) its summary."""
    return run_record_stage(cfg, stage, lambda job: _outcomes(job, clients, response_cache), runner="local")


def _outcomes(job: RecordJob, clients: dict[str, ChatModel], response_cache: Any) -> Iterator[RecordOutcome]:
    assert job.stage.worker is not None
    worker = job.stage.worker(job.cfg, clients)
    worker.stage = job.stage.name  # the declaration's name (evaluate's solve: eval_solve), for tags and rejects
    if response_cache is not None:
        worker.response_cache = response_cache
    loop = asyncio.new_event_loop()
    sem = asyncio.Semaphore(job.cfg.run.max_in_flight)
    try:
        loop.run_until_complete(worker.setup())
        for rows in _batches(job):
            by_kind, outcomes = loop.run_until_complete(process_batch(worker, rows, sem))
            commit(job.io, outcomes, by_kind)
            yield from outcomes
    finally:
        loop.run_until_complete(worker.close())
        loop.close()


def _batches(job: RecordJob) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for path in job.io.inputs:
        for row in io.iter_rows(path):
            if str(row.get("id")) in job.scan.skip_ids:
                continue
            batch.append(row)
            if len(batch) >= job.cfg.run.batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
