"""The tool-response cache every actor of a job shares: one Ray actor over the SQLite store.

The LLM-simulated executor asks the cache before the LLM, so the same tool call gets the same
response across episodes, actors and reruns (the SQLite file lives under the run dir). One named
actor per stage run, created by that run's driver (which alone kills it) and found by name in its
worker actors; two jobs over one run dir each have their own, over the same SQLite file (WAL;
first write wins). The actor restarts after a crash: its state is the file.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import ray

from toolweave.executors.base import ExecutorUnavailable

NAMESPACE = "toolweave"


def cache_actor_name(path: str | Path, run_token: str) -> str:
    return f"tool-cache-{hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]}-{run_token[:12]}"


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1, max_task_retries=3)
class ToolCacheActor:
    """Owns this run's connection to the SQLite store (get/put run in threads, WAL + busy timeout)."""

    def __init__(self, path: str):
        from toolweave.executors import SqliteResponseCache
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.cache = SqliteResponseCache(path)
        self.hits = self.misses = self.puts = 0

    async def get(self, key: str) -> Any:
        value = await self.cache.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def put(self, key: str, value: Any) -> None:
        self.puts += 1
        await self.cache.put(key, value)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "puts": self.puts}


def start_tool_cache(path: str | Path, run_token: str):
    """The driver's call: this stage run's cache actor (the driver kills it when the stage ends)."""
    handle = ToolCacheActor.options(name=cache_actor_name(path, run_token), namespace=NAMESPACE).remote(str(path))
    ray.get(handle.stats.remote())  # up and registered: the workers look it up by name
    return handle


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
