import os
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction
from toolweave.stages.probe import CALLS_PER_EPISODE

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
G1 = Path(__file__).parents[1] / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


def probe_config(run_dir, base_url, **ray) -> RunConfig:
    return RunConfig(run_dir=str(run_dir), llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": base_url, "model": "scripted", "is_vllm": False, "max_retries": 1, "timeout_s": 60,
        "max_concurrency": 2000}}},
        ray={"num_cpus": 8, "object_store_memory": 200_000_000, "actor_num_cpus": 0.25,
             "show_progress": False, **ray})


def write_g1_instructions(run_dir, calls: int = 2, limit: int | None = None) -> list[Instruction]:
    """StableToolBench's 163 solvable G1 queries as instructions (k calls each for the probe)."""
    from toolweave.instructions import import_toolbench_queries
    _, instrs, _ = import_toolbench_queries(G1)
    instrs = [i.model_copy(update={"extra": {**i.extra, CALLS_PER_EPISODE: calls}}) for i in instrs[:limit]]
    io.write_part(instrs, Path(run_dir) / "instructions", Instruction, name="input")
    return instrs


@pytest.fixture
def local_ray():
    import ray
    ray.init(num_cpus=8, object_store_memory=200_000_000, include_dashboard=False)
    yield
    ray.shutdown()
