"""What simulate, solve (and the probe) share: a worker holding the toolsets, the executor and its
response cache, that turns one instruction into one episode; and the ids and draws that make a
rerun recognise what it already wrote."""
from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any, ClassVar, get_args

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Record, Split, Tool
from toolweave.stages.base import RecordWorker


def record_rng(seed: int, record_id: str) -> random.Random:
    """A generator per record: the same record gets the same draws whatever batch it lands in."""
    return random.Random(seed * 1_000_003 + zlib.crc32(record_id.encode()))


def episode_id(instruction_id: str, method: str) -> str:
    """Deterministic from the inputs, so a rerun recognises what it already wrote."""
    return f"{instruction_id}--{method}"


def tool_cache_path(cfg: RunConfig) -> Path:
    return Path(cfg.executor.cache_path).expanduser() if cfg.executor.cache_path else cfg.path("tool_cache.sqlite")


class EpisodeWorker(RecordWorker):
    """Instruction row -> Episode; a failure is an episode with status "error" and its reason."""

    uses_tool_cache: ClassVar[bool] = True
    method: str = ""

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
        split = row.get("split") if row.get("split") in get_args(Split) else "train"  # a bad row's split too
        return [Episode(id=episode_id(iid, self.method), instruction_id=iid, method=self.method,
                        query=str(row.get("text") or ""), status="error", split=split, errors=[reason])]

    async def process(self, row: dict[str, Any]) -> list[Record]:
        instruction = Instruction.from_row(row)  # a RecordError becomes an error episode
        return [await self.run_episode(instruction, self.tools_for(instruction))]

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        raise NotImplementedError
