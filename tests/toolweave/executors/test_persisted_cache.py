"""The in-process runner's tool-response cache: SQLite only on the local disk, the responses
persisted to the run dir as Parquet parts (no SQLite file in the run dir), restored by the next run."""
from __future__ import annotations

import asyncio

from toolweave import io
from toolweave.config import ExecutorConfig, RunConfig
from toolweave.stages.episodes import tool_cache_path
from toolweave.stages.registry import STAGES
from toolweave.testing.fake_llm import FakeChatModel


def _worker(cfg: RunConfig):
    return STAGES["simulate"].worker(cfg, {"default": FakeChatModel([]), "executor": FakeChatModel([])})


def test_the_local_runners_cache_persists_parts_to_the_run_dir_and_the_next_run_restores_them(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path / "run"), executor=ExecutorConfig(kind="llm"))
    assert tool_cache_path(cfg) == str(tmp_path / "run" / "tool_cache")

    async def first():
        w = _worker(cfg)
        await w.setup()
        await w.response_cache.put("k1", "v1")
        local = w.response_cache.local
        await w.close()
        return local

    local = asyncio.run(first())
    assert not local.exists()  # the working copy leaves the disk after the final persist
    parts = io.part_files(tool_cache_path(cfg))
    assert len(parts) == 1 and str(parts[0]).endswith(".parquet")
    assert not [p for p in (tmp_path / "run").rglob("*") if "sqlite" in p.name]  # never SQLite in the run dir

    async def second():
        w = _worker(cfg)
        await w.setup()
        try:
            return await w.response_cache.get("k1"), w.response_cache.restored
        finally:
            await w.close()

    assert asyncio.run(second()) == ("v1", 1)
    assert len(io.part_files(tool_cache_path(cfg))) == 1  # nothing new: no empty part
