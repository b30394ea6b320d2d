"""A per-record stage as a streaming Ray Data pipeline (the runner behind `toolweave.stages.lifecycle`):

read the input Parquet -> (actor pool) drop already-done ids, run many records concurrently per
actor, commit each batch's records exactly once -> stream small outcome rows to the driver, which
shows progress and writes the summary. Nothing accumulates on the driver but counters.

A record that kills its actor every time (a crash in native code, memory) makes Ray Data give up
after `ray.max_task_retries`. The batches that were in flight then (their markers outlived the
actor) are run again alone, in fresh actors, split in halves until the record that kills them is
found; it is rejected by id with the reason, and the pipeline goes on with the rest.
"""
from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from actors.record_runner import RecordBatchRunner
from ray_jobs.runtime import LazyEngine, RunStopped, serve_model_under_test
from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import RecordOutcome
from toolweave.stages import ledger
from toolweave.stages.base import commit, failed_record
from toolweave.stages.declaration import Stage, Summary
from toolweave.stages.episodes import tool_cache_path
from toolweave.stages.lifecycle import RecordJob, RecordRunner
from toolweave.stages.scan import id_hash

class RayRuntime(RecordRunner):
    """Per-record stages on the connected Ray cluster (Ray Data, `RecordBatchRunner` actors); the run's
    engine started by the first stage that asks (`engine`), or one already at `url`; the model under
    test served as its own Serve LLM app."""

    name = "ray"
    serves_models = True

    def __init__(self, engine: LazyEngine | None = None, url: str | None = None):
        self.engine, self.url = engine, url

    def base_url(self) -> str | None:
        return self.engine() if self.engine is not None else self.url

    def serve_model(self, cfg: RunConfig, model_source: str, served_name: str, max_model_len: int | None):
        return serve_model_under_test(cfg, model_source, served_name, max_model_len)

    def outcomes(self, job: RecordJob) -> Iterator[dict[str, Any]]:
        url = self.base_url()  # the run's engine starts here: some input is left
        cfg, cache, cache_actor = job.cfg, None, None
        try:
            if job.stage.worker.uses_tool_cache and cfg.executor.kind == "llm":
                from actors.tool_cache import cache_actor_name, start_tool_cache
                cache = start_tool_cache(tool_cache_path(cfg), job.io.run_token)
                cache_actor = cache_actor_name(tool_cache_path(cfg), job.io.run_token)
            wait_for_placement(cfg, job.stage.name)
            runner_kwargs = dict(cfg_json=cfg.model_dump_json(), worker=job.stage.worker, io=job.io, base_url=url,
                                 cache_actor=cache_actor)
            skip = set(job.scan.skip_ids)
            seen = array("q")  # hashes of the ids whose outcome came back (8 bytes a record)
            while True:
                try:
                    for batch in _dataset(job, runner_kwargs, skip).iter_batches(batch_size=None, batch_format="pyarrow"):
                        rows = batch.to_pylist()
                        seen.extend(id_hash(r["id"]) for r in rows)
                        yield from rows
                    return
                except ray.exceptions.RayError as e:
                    suspects = ledger.in_flight(job.io.ledger)
                    if not suspects:
                        raise
                    # batches committed whose outcome rows were lost with the pipeline: from their ledger entries
                    yield from _committed_unseen(job, skip, seen)
                    ids = {i for batch_ids in suspects.values() for i in batch_ids} - ledger.done_inputs(job.io.ledger)
                    yield from _isolate(job, runner_kwargs, ids, e)
                    ledger.clear_in_flight(job.io.ledger)  # the dead actors' batches, all committed now
                    skip |= ledger.done_inputs(job.io.ledger)  # then the rest, in a new pipeline
        except (RunStopped, KeyboardInterrupt, PlacementTimeout):
            # a signal's clean stop, or no actor ever placed: give the stage up now, so a commit still in
            # flight is refused (its owner token is gone) and a rerun claims it without the fence's grace wait
            ledger.release(job.io.ledger, job.io.run_token)
            raise
        finally:
            if cache is not None:  # this run's actors are done with it: a final persist to the run dir, then it goes
                from actors.tool_cache import stop_tool_cache
                stop_tool_cache(cache)


def run_records(cfg: RunConfig, stage: Stage, base_url: str | None = None) -> Summary:
    """One per-record stage on the connected Ray cluster, its LLM calls to `base_url`; its summary."""
    return RayRuntime(url=base_url).run_records(cfg, stage)


class PlacementTimeout(RuntimeError):
    """A stage's actors could not be placed in `ray.placement_timeout_s`."""


def wait_for_placement(cfg: RunConfig, stage: str) -> None:
    """Reserve what the first `ray.min_actors` episode actors ask for, then free it at once: a stage
    whose actors no node can hold stops after a bounded wait with one line naming the ask and the
    nodes' resources (Ray Data would wait forever; Ray's own warning goes to the session logs only).
    On a cluster the wait lets the autoscaler add a node that fits."""
    from ray.util.placement_group import placement_group, remove_placement_group
    rs = cfg.ray
    ask = {k: v for k, v in {"CPU": rs.actor_num_cpus, **rs.actor_resources}.items() if v > 0}
    if not ask:
        return
    on_cluster = bool(rs.address or os.environ.get("RAY_ADDRESS"))  # as init_ray decides
    timeout = rs.placement_timeout_s or (900.0 if on_cluster else 60.0)
    pg = placement_group([ask] * rs.min_actors, strategy="SPREAD")
    try:
        if not pg.wait(timeout_seconds=timeout):
            raise PlacementTimeout(
                f"{stage}: no episode actor placed after {timeout:g}s (ray.placement_timeout_s): {rs.min_actors} "
                f"(ray.min_actors) x {_show(ask)} (ray.actor_num_cpus, ray.actor_resources) asked; "
                f"the cluster has {cluster_nodes()}")
    finally:
        remove_placement_group(pg)


def _show(r: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k} {v:g}" for k, v in r.items()) + "}"


def cluster_nodes() -> str:
    """The alive nodes' resources, identical nodes counted: `2 x {CPU 8, GPU 1}; 1 x {CPU 2, sim 1}`."""
    shown: dict[str, int] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            res = {k: v for k, v in sorted(node.get("Resources", {}).items())
                   if not k.startswith(("node:", "accelerator_type:")) and k not in ("memory", "object_store_memory")}
            shown[_show(res)] = shown.get(_show(res), 0) + 1
    return "; ".join(f"{n} node{'s' if n > 1 else ''} {r}" for r, n in shown.items()) or "no alive node"


def _committed_unseen(job: RecordJob, skip: set[str], seen: array) -> Iterator[dict[str, Any]]:
    known = set(np.frombuffer(seen, dtype=np.int64).tolist()) if seen else set()
    for e in ledger.entries(job.io.ledger):
        if e.id not in skip and id_hash(e.id) not in known:
            seen.append(id_hash(e.id))
            yield RecordOutcome(id=e.id, ok=e.ok, reason="" if e.ok else "failed", n_out=len(e.outputs)).to_row()


def _isolate(job: RecordJob, runner_kwargs: dict[str, Any], ids: set[str], error: Exception) -> Iterator[dict[str, Any]]:
    """Run the records `ids` in fresh actors, halving each group whose actor dies, down to the one
    record that kills it: that one is rejected by id, with the reason."""
    groups = [[r for p in job.io.inputs for r in io.iter_rows(p) if str(r.get("id")) in ids]]
    runner = ray.remote(num_cpus=job.cfg.ray.actor_num_cpus, max_restarts=0)(RecordBatchRunner)
    while groups:
        rows = groups.pop()
        actor = runner.remote(skip_ids=[], **runner_kwargs)
        try:
            yield from ray.get(actor.__call__.remote(pa.Table.from_pylist(rows))).to_pylist()
        except ray.exceptions.RayActorError as e:
            if len(rows) > 1:
                groups += [rows[:len(rows) // 2], rows[len(rows) // 2:]]
                continue
            worker = job.stage.worker(job.cfg, {})
            reason = (f"record {rows[0].get('id')!r} killed its worker process every time it ran "
                      f"({type(error).__name__}, then {type(e).__name__} alone)")
            records, outcome = failed_record(worker, rows[0], reason)
            commit(job.io, [outcome], records)
            yield outcome.to_row()
        finally:
            ray.kill(actor)


def _dataset(job: RecordJob, runner_kwargs: dict[str, Any], skip: set[str]) -> ray.data.Dataset:
    rs, run = job.cfg.ray, job.cfg.run
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
        fn_constructor_kwargs=dict(skip_ids=sorted(skip), **runner_kwargs),
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
