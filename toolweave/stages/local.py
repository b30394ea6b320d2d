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
from toolweave.stages.clients import build_clients
from toolweave.stages.declaration import Stage, Summary
from toolweave.stages.lifecycle import RecordJob, RecordRunner


def run_local(cfg: RunConfig, stage: Stage, clients: dict[str, ChatModel], response_cache: Any = None) -> Summary:
    """One per-record stage here, its LLM calls through `clients`; returns (and writes) its summary."""
    return LocalRuntime(clients, response_cache).run_records(cfg, stage)


class LocalRuntime(RecordRunner):
    """Per-record stages in this process on asyncio; their LLM calls through `clients` (None: the
    clients each stage's config names, as evaluate's solve config resolves them), the run's engine at `url`."""

    name = "local"

    def __init__(self, clients: dict[str, ChatModel] | None = None, response_cache: Any = None,
                 url: str | None = None):
        self.given_clients, self.response_cache, self.url = clients, response_cache, url

    def base_url(self) -> str | None:
        return self.url

    def outcomes(self, job: RecordJob) -> Iterator[RecordOutcome]:
        assert job.stage.worker is not None
        clients = self.given_clients if self.given_clients is not None else build_clients(job.cfg)
        worker = job.stage.worker(job.cfg, clients)
        worker.stage = job.stage.name  # the declaration's name (evaluate's solve: eval_solve), for tags and rejects
        if self.response_cache is not None:
            worker.response_cache = self.response_cache
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
