"""The per-record stages: which core function each calls on one input row.

build_toolset: CatalogueEntry -> Tool | Reject        (toolweave.build_toolset.build_tool)
instructions (toolalpaca): Tool -> Instructions        (toolweave.instructions.toolalpaca_instructions)
instructions (toolbench): API sample -> Instructions   (toolweave.instructions.toolbench_instructions)
simulate: Instruction -> Episode                       (toolweave.simulate.simulate_episode)
solve: Instruction -> Episode                          (toolweave.search.solve_instruction)

Episode stages record a failure as an episode with status "error" and its `errors`; the others
as a Reject. The core modules are imported where used, so this module loads on its own.
"""
from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import CatalogueEntry, Episode, Instruction, Record, RecordError, Reject, Tool
from toolweave.stages.base import RecordWorker, reject_for


def record_rng(seed: int, record_id: str) -> random.Random:
    """A generator per record: the same record gets the same draws whatever batch it lands in."""
    return random.Random(seed * 1_000_003 + zlib.crc32(record_id.encode()))


def episode_id(instruction_id: str, method: str) -> str:
    """Deterministic from the inputs, so a rerun recognises what it already wrote."""
    return f"{instruction_id}--{method}"


def tool_cache_path(cfg: RunConfig) -> Path:
    return Path(cfg.executor.cache_path).expanduser() if cfg.executor.cache_path else cfg.path("tool_cache.sqlite")


# --- build_toolset ---------------------------------------------------------------------------

class BuildToolsetWorker(RecordWorker):
    stage = "build_toolset"

    async def process(self, row: dict[str, Any]) -> list[Record]:
        from toolweave.build_toolset import build_tool
        try:
            entry = CatalogueEntry.from_row(row)
        except RecordError as e:
            return [reject_for(self.stage, row, str(e))]
        return [await build_tool(entry, self.client("builder"), self.cfg.toolsets)]


# --- instructions ----------------------------------------------------------------------------

class ToolAlpacaInstructionWorker(RecordWorker):
    stage = "instructions"

    async def process(self, row: dict[str, Any]) -> list[Record]:
        from toolweave.instructions import toolalpaca_instructions
        try:
            tool = Tool.from_row(row)
        except RecordError as e:
            return [reject_for(self.stage, row, str(e))]
        rng = record_rng(self.cfg.seed, tool.id)
        return list(await toolalpaca_instructions(tool, self.client("builder"), self.cfg.instructions, rng=rng))


class ToolBenchInstructionWorker(RecordWorker):
    """Input rows are the API samples the driver drew (`plan.ApiSampleRow`)."""

    stage = "instructions"

    async def setup(self) -> None:
        from toolweave.instructions import load_seeds
        self.seeds = load_seeds(self.cfg.instructions.seed_file)

    async def process(self, row: dict[str, Any]) -> list[Record]:
        from toolweave.instructions import toolbench_instructions
        from toolweave.stages.plan import ApiSampleRow
        sample = ApiSampleRow.from_row(row).to_sample()
        rng = record_rng(self.cfg.seed, row["id"])
        return list(await toolbench_instructions(sample, self.client("builder"), self.seeds,
                                                 self.cfg.instructions, rng=rng))


# --- episodes --------------------------------------------------------------------------------

class EpisodeWorker(RecordWorker):
    """Shared by simulate and solve: the toolsets, the executor and its response cache."""

    method: str = ""
    response_cache: Any = None  # set by the runner: a shared cache (Ray actor) or None = SQLite here

    @classmethod
    def wants(cls, cfg: RunConfig, row: dict[str, Any]) -> bool:
        return True

    async def setup(self) -> None:
        from toolweave.executors import SqliteResponseCache, make_executor
        tools, bad = io.read_records(self.cfg.path("toolsets"), Tool)
        self.tools = {t.id: t for t in tools}
        self.bad_tools = {e.record_id: e.reason for e in bad}
        if self.response_cache is None and self.cfg.executor.kind == "llm":
            self.response_cache = SqliteResponseCache(tool_cache_path(self.cfg))
        self.executor = make_executor(self.cfg.executor, llm=self.client("executor"), cache=self.response_cache)

    async def close(self) -> None:
        aclose = getattr(getattr(self, "executor", None), "aclose", None)  # the HTTP executor's client
        if aclose is not None:
            await aclose()

    def tools_for(self, instruction: Instruction) -> list[Tool]:
        missing = [t for t in instruction.tool_ids if t not in self.tools]
        if missing:
            why = "; ".join(f"{t}: {self.bad_tools.get(t, 'not in the toolsets dataset')}" for t in missing)
            raise LookupError(f"unknown tool id(s) {why}")
        return [self.tools[t] for t in instruction.tool_ids]

    def on_error(self, row: dict[str, Any], error: BaseException) -> list[Record]:
        reason = f"{type(error).__name__}: {error}"[:2000]
        iid = str(row.get("id", "?"))
        return [Episode(id=episode_id(iid, self.method), instruction_id=iid, method=self.method,
                        query=str(row.get("text") or ""), status="error", split=str(row.get("split") or "train"),
                        errors=[reason])]

    async def process(self, row: dict[str, Any]) -> list[Record]:
        instruction = Instruction.from_row(row)  # a RecordError becomes an error episode
        return [await self.run_episode(instruction, self.tools_for(instruction))]

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        raise NotImplementedError


class SimulateWorker(EpisodeWorker):
    stage = "simulate"

    def __init__(self, cfg: RunConfig, clients):
        super().__init__(cfg, clients)
        self.method = "simulate_react" if cfg.simulate.protocol == "react" else "simulate_fc"

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        from toolweave.simulate import simulate_episode
        return await simulate_episode(instruction, tools, assistant=self.client("assistant"),
                                      user=self.client("user"), executor=self.executor,
                                      cfg=self.cfg.simulate, env_cfg=self.cfg.executor,
                                      episode_id=episode_id(instruction.id, self.method))


class SolveWorker(EpisodeWorker):
    stage = "solve"

    def __init__(self, cfg: RunConfig, clients):
        super().__init__(cfg, clients)
        self.method = cfg.solve.method

    @classmethod
    def wants(cls, cfg: RunConfig, row: dict[str, Any]) -> bool:
        return not cfg.solve.splits or row.get("split") in cfg.solve.splits

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        from toolweave.search import solve_instruction
        return await solve_instruction(instruction, tools, self.client("assistant"), self.executor,
                                       self.cfg.solve, env_cfg=self.cfg.executor,
                                       episode_id=episode_id(instruction.id, self.method))


WORKERS: dict[str, str] = {
    "build_toolset": "toolweave.stages.workers:BuildToolsetWorker",
    "instructions.toolalpaca": "toolweave.stages.workers:ToolAlpacaInstructionWorker",
    "instructions.toolbench": "toolweave.stages.workers:ToolBenchInstructionWorker",
    "simulate": "toolweave.stages.workers:SimulateWorker",
    "solve": "toolweave.stages.workers:SolveWorker",
}

__all__ = ["BuildToolsetWorker", "ToolAlpacaInstructionWorker", "ToolBenchInstructionWorker",
           "SimulateWorker", "SolveWorker", "EpisodeWorker", "WORKERS", "episode_id", "record_rng",
           "Reject"]
