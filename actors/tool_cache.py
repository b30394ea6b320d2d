"""The tool-response cache every actor of a job shares: one Ray actor over a
`PersistedResponseCache` (toolweave/executors/persisted_cache.py: SQLite on the actor's own node's
local disk, the responses persisted to the run dir as Parquet parts, never SQLite on shared storage).

The LLM-simulated executor asks the cache before the LLM, so the same tool call gets the same
response across episodes, actors and reruns. The actor persists every `persist_every_s` with new
entries, and at `stop_tool_cache` (the driver's call when the stage ends). One named actor per
stage run, created by that run's driver (which alone stops it) and found by name in its worker actors.
"""
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import ray

from toolweave import io
from toolweave.executors.base import ExecutorUnavailable
from toolweave.executors.persisted_cache import PersistedResponseCache

NAMESPACE = "toolweave"
PERSIST_EVERY_S = 60.0


def cache_actor_name(path: str | Path, run_token: str) -> str:
    return f"tool-cache-{hashlib.sha256(io.location(path).encode()).hexdigest()[:16]}-{run_token[:12]}"


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1, max_task_retries=3)
class ToolCacheActor(PersistedResponseCache):
    """Owns this run's working copy (get/put in threads, WAL) and its parts in the run dir."""

    def __init__(self, persisted: str, name: str = "tool-cache", persist_every_s: float = PERSIST_EVERY_S):
        super().__init__(persisted, name)
        self.persist_every_s = persist_every_s
        self._timer: asyncio.Task | None = None

    def _start_timer(self) -> None:
        if self._timer is None and self.persist_every_s > 0:
            self._timer = asyncio.get_running_loop().create_task(self._persist_periodically())

    async def _persist_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.persist_every_s)
            if self.pending:
                await self.persist()

    async def get(self, key: str) -> Any:
        self._start_timer()
        return await super().get(key)

    async def put(self, key: str, value: Any) -> None:
        self._start_timer()
        await super().put(key, value)

    def stats(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "puts": self.puts, "restored": self.restored,
                "persists": self.persists, "pending": len(self.pending), "local": str(self.local),
                "node_id": ray.get_runtime_context().get_node_id()}


def start_tool_cache(path: str | Path, run_token: str, persist_every_s: float = PERSIST_EVERY_S, **options):
    """The driver's call: this stage run's cache actor, restored from `path` (in the run dir).
    `options` go to the actor's `.options()` (e.g. a runtime_env with the object store's env)."""
    name = cache_actor_name(path, run_token)
    handle = ToolCacheActor.options(name=name, namespace=NAMESPACE, **options).remote(
        io.location(path), name, persist_every_s)
    ray.get(handle.stats.remote())  # up and registered: the workers look it up by name
    return handle


def stop_tool_cache(handle) -> dict[str, Any]:
    """The driver's call when the stage ends: a final persist to the run dir, then the actor goes."""
    try:
        written = ray.get(handle.persist.remote())
        ray.get(handle.drop_local_copy.remote())
        return written
    finally:
        ray.kill(handle)


class ActorResponseCache:
    """The `ResponseCache` protocol (async get/put) over the shared actor, for the executors."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def named(cls, name: str) -> "ActorResponseCache":
        return cls(ray.get_actor(name, namespace=NAMESPACE))

    async def get(self, key: str) -> Any:
        try:
            return await self.handle.get.remote(key)
        except ray.exceptions.RayError as e:
            raise ExecutorUnavailable(f"the shared tool-response cache failed: {type(e).__name__}: {e}") from e

    async def put(self, key: str, value: Any) -> None:
        try:
            await self.handle.put.remote(key, value)
        except ray.exceptions.RayError as e:
            raise ExecutorUnavailable(f"the shared tool-response cache failed: {type(e).__name__}: {e}") from e
