"""Probe-stage runs (`toolweave.stages.probe`) against a scripted server, for the Ray pipeline tests:
their config, StableToolBench's 163 solvable G1 queries as instructions (needs a source checkout:
the queries are under tests/data), and a probe whose worker dies on a marked record."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction, Record
from toolweave.stages import probe
from toolweave.stages.probe import CALLS_PER_EPISODE, ProbeWorker

G1 = Path(__file__).parents[2] / "tests" / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


def probe_config(run_dir, base_url: str, batch_size: int = 16, max_in_flight: int = 512, **ray) -> RunConfig:
    return RunConfig(run_dir=str(run_dir), llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": base_url, "model": "scripted", "is_vllm": False, "max_retries": 1, "timeout_s": 60,
        "max_concurrency": 2000}}},
        ray={"num_cpus": 8, "object_store_memory": 200_000_000, "actor_num_cpus": 0.25, **ray},
        run={"show_progress": False, "batch_size": batch_size, "max_in_flight": max_in_flight})


def write_g1_instructions(run_dir, calls: int = 2, limit: int | None = None) -> list[Instruction]:
    """The G1 queries as instructions (k calls each for the probe)."""
    from toolweave.authoring.instructions import import_toolbench_queries
    _, instrs, _ = import_toolbench_queries(G1, stage=probe.STAGE.name)  # its rejects are not kept
    instrs = [i.model_copy(update={"extra": {**i.extra, CALLS_PER_EPISODE: calls}}) for i in instrs[:limit]]
    io.write_part(instrs, Path(run_dir) / "instructions", Instruction, name="input")
    return instrs


POISON = "probe_poison"  # Instruction.extra key: the poison probe's worker process dies on this record


class PoisonProbeWorker(ProbeWorker):
    """The probe, except that a record marked `POISON` kills the process running it (as a crash in
    native code would), every time."""

    async def process(self, row: dict[str, Any]) -> list[Record]:
        if json.loads(row.get("extra") or "{}").get(POISON):
            os._exit(1)
        return await super().process(row)


POISON_PROBE = dataclasses.replace(probe.STAGE, worker=PoisonProbeWorker)


class CachingProbeWorker(ProbeWorker):
    """The probe, storing each record's reply in the run's shared tool-response cache (as the
    LLM-simulated executor does): the Ray runner's cache actor must persist them at the end."""

    uses_tool_cache = True

    async def process(self, row: dict[str, Any]) -> list[Record]:
        records = await super().process(row)
        await self.response_cache.put(f"probe:{row['id']}", records[0].final_answer)
        return records


CACHING_PROBE = dataclasses.replace(probe.STAGE, worker=CachingProbeWorker)
