"""What simulate, solve (and the probe) share: a worker holding the toolsets, the executor and its
response cache, that turns one instruction into one episode; and the ids and draws that make a
rerun recognise what it already wrote."""
from __future__ import annotations

import random
import uuid
import zlib
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


def tool_cache_path(cfg: RunConfig) -> str:
    """The run's persisted tool responses: a dataset dir of Parquet parts (a path or a URI), never
    a SQLite file (SQLite stays on a local disk: toolweave/executors/persisted_cache.py)."""
    return io.location(cfg.executor.cache_path if cfg.executor.cache_path else cfg.path("tool_cache"))


class EpisodeWorker(RecordWorker):
    """Instruction row -> Episode; a failure is an episode with status "error" and its reason."""

    uses_tool_cache: ClassVar[bool] = True
    method: str = ""

    async def setup(self) -> None:
        from toolweave.executors import make_executor
        from toolweave.executors.persisted_cache import PersistedResponseCache
        tools, bad = io.read_records(self.cfg.path("toolsets"), Tool)
        self.tools = {t.id: t for t in tools}
        self.bad_tools = {e.record_id: e.reason for e in bad}
        if self.response_cache is None and self.cfg.executor.kind == "llm":
            # the in-process runner's own (the Ray runner hands in its shared actor's): a working
            # copy on this machine's disk, persisted to the run dir when the worker closes
            self.response_cache = self._own_cache = PersistedResponseCache(
                tool_cache_path(self.cfg), name=f"local-{uuid.uuid4().hex[:12]}")
        self.executor = make_executor(self.cfg.executor, llm=self.client("executor"), cache=self.response_cache)

    async def close(self) -> None:
        aclose = getattr(getattr(self, "executor", None), "aclose", None)  # the HTTP executor's client
        if aclose is not None:
            await aclose()
        own = getattr(self, "_own_cache", None)
        if own is not None:
            await own.persist()
            own.drop_local_copy()

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
