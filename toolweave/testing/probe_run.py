"""Inputs for probe-stage runs (`toolweave.stages.probe`) against a scripted server: the Ray pipeline
tests' config and StableToolBench's 163 solvable G1 queries as instructions. Needs a source checkout
(the queries are under tests/data)."""
from __future__ import annotations

from pathlib import Path

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction
from toolweave.stages.probe import CALLS_PER_EPISODE

G1 = Path(__file__).parents[2] / "tests" / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


def probe_config(run_dir, base_url: str, batch_size: int = 16, max_in_flight: int = 512, **ray) -> RunConfig:
    return RunConfig(run_dir=str(run_dir), llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": base_url, "model": "scripted", "is_vllm": False, "max_retries": 1, "timeout_s": 60,
        "max_concurrency": 2000}}},
        ray={"num_cpus": 8, "object_store_memory": 200_000_000, "actor_num_cpus": 0.25, **ray},
        run={"show_progress": False, "batch_size": batch_size, "max_in_flight": max_in_flight})


def write_g1_instructions(run_dir, calls: int = 2, limit: int | None = None) -> list[Instruction]:
    """The G1 queries as instructions (k calls each for the probe)."""
    from toolweave.instructions import import_toolbench_queries
    _, instrs, _ = import_toolbench_queries(G1)
    instrs = [i.model_copy(update={"extra": {**i.extra, CALLS_PER_EPISODE: calls}}) for i in instrs[:limit]]
    io.write_part(instrs, Path(run_dir) / "instructions", Instruction, name="input")
    return instrs
