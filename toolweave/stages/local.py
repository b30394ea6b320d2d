"""Run a per-record stage in this process on asyncio (no Ray): the same workers, batches and
exactly-once commits as the Ray pipeline. Used by unit tests and for small runs."""
from __future__ import annotations

import asyncio
from typing import Any

from toolweave import io
from toolweave.config import RunConfig
from toolweave.llm.types import ChatModel
from toolweave.stages import ledger, prepare
from toolweave.stages.base import Progress, commit, load_worker_class, process_batch
from toolweave.stages.plan import RecordStagePlan, finish_record_stage, record_stage_plan, write_summary


async def run_record_stage_local(cfg: RunConfig, stage: str, clients: dict[str, ChatModel],
                                 response_cache: Any = None, plan: RecordStagePlan | None = None) -> dict[str, Any]:
    plan = plan or record_stage_plan(cfg, stage)
    scan = prepare.begin(plan.io, plan.wants(cfg), plan.filter_columns, cfg.ray.limit)
    progress = Progress(stage=stage, total=scan.todo, skipped=scan.already_done)
    worker = load_worker_class(plan.worker)(cfg, clients)
    if response_cache is not None:
        worker.response_cache = response_cache
    await worker.setup()
    sem = asyncio.Semaphore(cfg.ray.max_in_flight)
    batch: list[dict[str, Any]] = []

    async def flush(rows: list[dict[str, Any]]) -> None:
        by_kind, outcomes = await process_batch(worker, rows, sem)
        commit(plan.io, [str(r["id"]) for r in rows], by_kind)
        for o in outcomes:
            progress.add(o)

    try:
        for path in plan.io.inputs:
            for row in io.iter_rows(path):
                if str(row.get("id")) in scan.skip_ids:
                    continue
                batch.append(row)
                if len(batch) >= cfg.ray.batch_size:
                    await flush(batch)
                    batch = []
        if batch:
            await flush(batch)
    finally:
        await worker.close()
    notes = {**plan.notes, **finish_record_stage(cfg, stage)}
    ledger.release(plan.io.ledger, plan.io.run_token)
    return write_summary(cfg, stage, progress, {**notes, "filtered": scan.filtered,
                                                 "duplicate_ids": len(scan.duplicates), "runner": "local"})
