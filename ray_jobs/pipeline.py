"""A per-record stage as a streaming Ray Data pipeline (the runner behind `toolweave.stages.lifecycle`):

read the input Parquet -> (actor pool) drop already-done ids, run many records concurrently per
actor, commit each batch's records exactly once -> stream small outcome rows to the driver, which
shows progress and writes the summary. Nothing accumulates on the driver but counters.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import ray

from actors.record_runner import RecordBatchRunner
from toolweave import io
from toolweave.config import RunConfig
from toolweave.stages.declaration import Stage, Summary
from toolweave.stages.episodes import tool_cache_path
from toolweave.stages.lifecycle import RecordJob, run_record_stage

BaseURL = str | Callable[[], str | None] | None  # a URL, or a function that starts the engine and gives it


def run_records(cfg: RunConfig, stage: Stage, base_url: BaseURL = None) -> Summary:
    """Run one per-record stage on the connected Ray cluster; returns (and writes) its summary.
    `base_url` may be a function that starts the engine: called only when some input is left."""
    return run_record_stage(cfg, stage, lambda job: _outcomes(job, base_url), runner="ray")


def _outcomes(job: RecordJob, base_url: BaseURL) -> Iterator[dict[str, Any]]:
    url = base_url() if callable(base_url) else base_url
    cfg, cache = job.cfg, None
    cache_actor = None
    try:
        if job.stage.worker.uses_tool_cache and cfg.executor.kind == "llm":
            from actors.tool_cache import cache_actor_name, start_tool_cache
            cache = start_tool_cache(tool_cache_path(cfg), job.io.run_token)
            cache_actor = cache_actor_name(tool_cache_path(cfg), job.io.run_token)
        for batch in _dataset(job, url, cache_actor).iter_batches(batch_size=None, batch_format="pyarrow"):
            yield from batch.to_pylist()
    finally:
        if cache is not None:
            ray.kill(cache)  # this run's actors are done with it; the SQLite file keeps the responses


def _dataset(job: RecordJob, base_url: str | None, cache_actor: str | None) -> ray.data.Dataset:
    cfg, rs, run = job.cfg, job.cfg.ray, job.cfg.run
    # twice the batches the in-flight bound holds: the second half waits on the actor's semaphore,
    # so slots freed by finishing records (often a whole wave at once) are refilled at once,
    # not after Ray Data has seen a batch end and sent the next
    batches_per_actor = 2 * math.ceil(run.max_in_flight / run.batch_size)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own (records, LLM calls, tokens/s, ETA)
    ctx.print_on_execution_start = False
    input_files = [str(f) for p in job.io.inputs for f in io.part_files(p)]
    # blocks of one batch each: a map task's outcome rows reach the driver when its batch is
    # committed (a whole input file in one block came back, all of it, at the very end)
    ds = ray.data.read_parquet(input_files, columns=None).repartition(target_num_rows_per_block=run.batch_size)
    return ds.map_batches(
        RecordBatchRunner,
        fn_constructor_kwargs=dict(cfg_json=cfg.model_dump_json(), worker=job.stage.worker, io=job.io,
                                   skip_ids=sorted(job.scan.skip_ids), base_url=base_url, cache_actor=cache_actor),
        batch_size=run.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=rs.min_actors, max_size=rs.max_actors,
                                           max_tasks_in_flight_per_actor=batches_per_actor,
                                           max_concurrent_calls_per_actor=batches_per_actor),
        # a fraction of a CPU: the work is waiting on LLM replies; whole CPUs would starve the
        # read tasks of a small cluster (seen to hang with 2 actors x 1 CPU on 2 CPUs)
        num_cpus=rs.actor_num_cpus,
        resources=rs.actor_resources or None,
        max_task_retries=rs.max_task_retries,
    )
