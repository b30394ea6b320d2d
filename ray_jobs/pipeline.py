"""A per-record stage as a streaming Ray Data pipeline:

read the input Parquet -> (actor pool) drop already-done ids, run many records concurrently per
actor, commit each batch's records exactly once -> stream small outcome rows to the driver, which
shows progress and writes the summary. Nothing accumulates on the driver but counters.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ray

from actors.record_runner import RecordBatchRunner
from toolweave import io
from toolweave.config import RunConfig
from toolweave.stages import ledger, prepare
from toolweave.stages.base import Progress
from toolweave.stages.display import ProgressView
from toolweave.stages.plan import RecordStagePlan, finish_record_stage, record_stage_plan, write_summary
from toolweave.stages.workers import WORKERS, tool_cache_path


def _resolve(base_url: str | Callable[[], str | None] | None) -> str | None:
    return base_url() if callable(base_url) else base_url


def run_record_stage(cfg: RunConfig, stage: str, base_url: str | Callable[[], str | None] | None = None,
                     plan: RecordStagePlan | None = None) -> dict[str, Any]:
    """Run one per-record stage on the connected Ray cluster; returns (and writes) its summary.
    `base_url` may be a function that starts the engine: called only when some input is left.
    `plan` replaces the stage's own (the probe stage of the benchmarks and tests)."""
    plan = plan or record_stage_plan(cfg, stage)
    scan = prepare.begin(plan.io, plan.wants(cfg), plan.filter_columns, cfg.ray.limit)
    progress = Progress(stage=stage, total=scan.todo, skipped=scan.already_done)
    extra = {"filtered": scan.filtered, "duplicate_ids": len(scan.duplicates), "runner": "ray"}
    if scan.todo == 0:
        notes = {**plan.notes, **finish_record_stage(cfg, stage)}
        ledger.release(plan.io.ledger, plan.io.run_token)
        return write_summary(cfg, stage, progress, {**notes, **extra})

    base_url = _resolve(base_url)
    cache = cache_actor = None
    try:
        if plan.worker in (WORKERS["simulate"], WORKERS["solve"]) and cfg.executor.kind == "llm":
            from actors.tool_cache import cache_actor_name, start_tool_cache
            cache = start_tool_cache(tool_cache_path(cfg), plan.io.run_token)
            cache_actor = cache_actor_name(tool_cache_path(cfg), plan.io.run_token)
        ds = _dataset(cfg, plan, scan, base_url, cache_actor)
        view = ProgressView(progress, enabled=cfg.ray.show_progress)
        with view:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in batch.to_pylist():
                    progress.add(row)
                view.update()
    finally:
        if cache is not None:
            ray.kill(cache)  # this run's actors are done with it; the SQLite file keeps the responses
    # parts a killed earlier run's workers wrote after this run's start-up cleanup
    ledger.remove_orphans(plan.io.stage, plan.io.ledger, plan.io.outputs())
    notes = {**plan.notes, **finish_record_stage(cfg, stage)}
    ledger.release(plan.io.ledger, plan.io.run_token)
    return write_summary(cfg, stage, progress, {**notes, **extra})


def _dataset(cfg: RunConfig, plan: RecordStagePlan, scan: prepare.InputScan, base_url: str | None,
             cache_actor: str | None) -> ray.data.Dataset:
    rs = cfg.ray
    # twice the batches the in-flight bound holds: the second half waits on the actor's semaphore,
    # so slots freed by finishing records (often a whole wave at once) are refilled at once,
    # not after Ray Data has seen a batch end and sent the next
    batches_per_actor = 2 * math.ceil(rs.max_in_flight / rs.batch_size)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own (records, LLM calls, tokens/s, ETA)
    ctx.print_on_execution_start = False
    input_files = [str(f) for p in plan.io.inputs for f in io.part_files(p)]
    # blocks of one batch each: a map task's outcome rows reach the driver when its batch is
    # committed (a whole input file in one block came back, all of it, at the very end)
    ds = ray.data.read_parquet(input_files, columns=None).repartition(target_num_rows_per_block=rs.batch_size)
    return ds.map_batches(
        RecordBatchRunner,
        fn_constructor_kwargs=dict(cfg_json=cfg.model_dump_json(), worker=plan.worker, io=plan.io,
                                   skip_ids=sorted(scan.skip_ids), base_url=base_url, cache_actor=cache_actor),
        batch_size=rs.batch_size,
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


def solve_for_evaluation(cfg: RunConfig, base_url: str | Callable[[], str | None] | None) -> dict[str, Any]:
    """`evaluate.solve_with`: serve the model under test on a second embedded engine, solve the
    test splits with it as the assistant into `eval_episodes/`, stop it. The engine is started only
    when some test instruction is still unsolved (a rerun of a finished run starts nothing)."""
    from toolweave.llm.engine import EmbeddedEngine
    from toolweave.stages import eval_solve
    scan_cfg = eval_solve.solve_config(cfg, None, None)  # scanning needs no endpoint
    replaced = eval_solve.retire_other_models_episodes(scan_cfg)  # another model's are not this one's
    engine_cfg = eval_solve.engine_config(cfg)
    about = {"model": engine_cfg.model, "served_name": engine_cfg.served_name,
             "max_model_len": engine_cfg.max_model_len, "replaced_other_models_episodes": replaced}
    if eval_solve.pending(scan_cfg) == 0:
        return {**run_record_stage(scan_cfg, eval_solve.STAGE, plan=eval_solve.solve_plan(scan_cfg)), **about}
    base_url = _resolve(base_url)  # the run's engine first: the executor plays the tools on it
    with EmbeddedEngine(engine_cfg) as engine:
        solve_cfg = eval_solve.solve_config(cfg, base_url, engine.base_url)
        summary = run_record_stage(solve_cfg, eval_solve.STAGE, plan=eval_solve.solve_plan(solve_cfg))
    return {**summary, **about}
