"""Short calls (issue 21): from a stage job's module to its core, measured on the real call chains.
On the driver, `python -m ray_jobs.solve` reaches the runner's hand-off to Ray Data in 6 calls; on an
episode actor, Ray's call of the batch runner reaches `toolweave.search.solve_instruction` in 4 more
(the actor's chain is read from its asyncio tasks: `gather` runs each record in a task of its own,
so the batch's suspended task gives the outer part).
None of the steps is a function stored in a field. The Ray session is left out (its start is not on
the path) and the core replaced by a probe that records where it was called from."""
from __future__ import annotations

import asyncio
import inspect
import runpy
import sys
from contextlib import nullcontext
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction, Tool

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tuple(str(ROOT / p) + "/" for p in ("ray_jobs", "actors", "training", "toolweave"))
G1 = ROOT / "tests" / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"


def _ours(filename: str) -> bool:
    return filename.startswith(PACKAGES)


def _run_dir(run_dir: Path) -> None:
    from toolweave.authoring.instructions import import_toolbench_queries
    tools, instructions, _ = import_toolbench_queries(G1, stage="instructions")
    io.write_part(tools, run_dir / "toolsets", Tool, name="input")
    io.write_part(instructions[:2], run_dir / "instructions", Instruction, name="input")


def test_the_driver_reaches_ray_data_in_six_calls_from_the_stage_module(tmp_path, monkeypatch):
    import ray_jobs.runtime
    from ray_jobs.pipeline import RayRuntime

    _run_dir(tmp_path / "run")
    config = tmp_path / "solve.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": ["solve"],
                                      "llm": {"engine": "endpoints"}, "executor": {"kind": "mock"}}))
    chains: list[list[str]] = []

    def handed_to_ray_data(self, job):
        chains.append([f"{Path(f.filename).relative_to(ROOT)}:{f.function}"
                       for f in reversed(inspect.stack()[1:]) if _ours(f.filename)])
        return iter(())

    monkeypatch.setattr(ray_jobs.runtime, "ray_session", lambda cfg: nullcontext())
    monkeypatch.setattr(RayRuntime, "outcomes", handed_to_ray_data)
    monkeypatch.setattr(sys, "argv", ["ray_jobs.solve", "--config", str(config)])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("ray_jobs.solve", run_name="__main__")
    assert done.value.code == 0
    (chain,) = chains
    # each of these frames makes one call down the path; the last one calls the runner's outcomes
    assert chain == ["ray_jobs/solve.py:<module>", "ray_jobs/cli.py:stage_main", "ray_jobs/cli.py:run_from_cli",
                     "ray_jobs/cli.py:run_stages", "toolweave/stages/declaration.py:run",
                     "toolweave/stages/lifecycle.py:run_records"], chain
    assert len(chain) <= 6


def _await_chain(coro) -> list[str]:
    """The coroutines a suspended task's `coro` awaits, outermost first (its logical call stack)."""
    out = []
    while inspect.iscoroutine(coro):
        out.append(coro)
        coro = coro.cr_await
    return [f"{Path(c.cr_code.co_filename).relative_to(ROOT)}:{c.cr_code.co_name}"
            for c in out if _ours(c.cr_code.co_filename)]


def test_an_actor_reaches_solve_instruction_in_four_calls_from_rays_call(tmp_path, monkeypatch):
    import toolweave.search
    from actors.record_runner import RecordBatchRunner
    from toolweave.stages import solve
    from toolweave.stages.lifecycle import begin

    _run_dir(tmp_path)
    cfg = RunConfig(run_dir=str(tmp_path), llm={"engine": "endpoints"}, executor={"kind": "mock"})
    chains: list[list[str]] = []

    async def core(*args, **kwargs):
        record_task = asyncio.current_task()
        batch_task = next(t for t in asyncio.all_tasks() if t is not record_task and not t.done())
        running = [f"{Path(f.filename).relative_to(ROOT)}:{f.function}"  # this task runs: its frames
                   for f in reversed(inspect.stack()[1:]) if _ours(f.filename)]
        chains.append(_await_chain(batch_task.get_coro()) + running + ["toolweave/search:solve_instruction"])
        raise RuntimeError("the probe stops here")

    monkeypatch.setattr(toolweave.search, "solve_instruction", core)
    job = begin(cfg, solve.STAGE)  # the driver's claim: the actor's commit needs its token
    try:
        runner = RecordBatchRunner(cfg.model_dump_json(), solve.SolveWorker, job.io, skip_ids=[])
        rows = list(io.iter_rows(cfg.path("instructions")))[:1]
        outcomes = asyncio.run(runner(pa.Table.from_pylist(rows)))
        del runner  # as Ray drops it: its worker and clients closed now, not at interpreter exit
    finally:
        job.lease.stop()
    assert outcomes.num_rows == 1 and not outcomes.column("ok")[0].as_py()  # the probe's stop, recorded
    (chain,) = chains
    assert chain == ["actors/record_runner.py:__call__", "toolweave/stages/base.py:process_batch",
                     "toolweave/stages/base.py:process_one", "toolweave/stages/solve.py:process",
                     "toolweave/search:solve_instruction"], chain
    assert len(chain) - 1 <= 4  # calls: each entry calls the next
