"""The Ray Data callable that runs a per-record stage: many records at once on the actor's
asyncio loop, each batch committed exactly once by the actor itself.

Ray Data calls `__call__` with one batch (a pyarrow Table of input rows); several batches of one
actor run concurrently (async UDF), all sharing one semaphore of `cfg.run.max_in_flight`, so an
actor keeps up to that many episodes in flight. The records go straight to Parquet from here
(atomic part files named by the batch's ids, then the ledger entry: see toolweave/stages/ledger.py);
what flows back to the driver is one small outcome row per input, for progress and the summary.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa

from toolweave.aio import finish_on
from toolweave.config import RunConfig
from toolweave.io import delete as delete_file
from toolweave.schemas import RecordOutcome
from toolweave.stages import ledger
from toolweave.stages.base import RecordWorker, StageIO, commit, process_batch
from toolweave.stages.clients import build_clients


class RecordBatchRunner:
    def __init__(self, cfg_json: str, worker: type[RecordWorker], io: StageIO, skip_ids: list[str],
                 base_url: str | None = None, cache_actor: str | None = None):
        self.cfg = RunConfig.model_validate_json(cfg_json)
        self.io = io
        self.skip = frozenset(skip_ids)  # hashed once, not per batch
        clients = build_clients(self.cfg, base_url)
        self.clients = list({id(c): c for c in clients.values() if hasattr(c, "close")}.values())  # roles share
        self.worker = worker(self.cfg, clients)
        self.worker.stage = io.stage  # the declaration's name (evaluate's solve: eval_solve), for tags and rejects
        if cache_actor is not None:
            from actors.tool_cache import ActorResponseCache
            self.worker.response_cache = ActorResponseCache.named(cache_actor)
        self.sem = asyncio.Semaphore(self.cfg.run.max_in_flight)
        self._setup: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __del__(self) -> None:
        # Ray Data drops the callable when the actor exits gracefully: close the worker's
        # executor and the HTTP sessions (aiohttp reports every connection left open)
        loop, worker = getattr(self, "_loop", None), getattr(self, "worker", None)
        if loop is not None and worker is not None:
            finish_on(loop, worker.close())
        for c in getattr(self, "clients", []):
            c.close()

    async def _ready(self) -> None:
        if self._setup is None:  # first batch on this actor: load toolsets, executor (once)
            self._loop = asyncio.get_running_loop()
            self._setup = asyncio.ensure_future(self.worker.setup())
        await self._setup

    async def __call__(self, batch: pa.Table) -> pa.Table:
        await self._ready()
        if self.skip:  # done in an earlier run, duplicate, or filtered by the driver's scan
            batch = batch.filter(pa.array([str(i) not in self.skip for i in batch["id"].to_pylist()], pa.bool_()))
        rows: list[dict[str, Any]] = batch.to_pylist()
        if not rows:
            return RecordOutcome.ARROW.empty_table()
        ids = [str(r["id"]) for r in rows]
        # outlives this process if a record kills it: the driver then finds that record (pipeline.py)
        marker = ledger.mark_in_flight(self.io.ledger, ledger.batch_key(self.io.stage, ids), ids)
        by_kind, outcomes = await process_batch(self.worker, rows, self.sem)
        # Parquet writing is blocking: off the loop, so the other batches' episodes keep going
        await asyncio.to_thread(commit, self.io, outcomes, by_kind)
        delete_file(marker)
        return pa.Table.from_pylist([o.to_row() for o in outcomes], schema=RecordOutcome.ARROW)
