"""The tool-response cache every actor of a job shares: one Ray actor over the SQLite store.

The LLM-simulated executor asks the cache before the LLM, so the same tool call gets the same
response across episodes, actors and reruns (the SQLite file lives under the run dir). One named
actor per cache file, created by the driver and found by name in each worker actor.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import ray

NAMESPACE = "toolweave"


def cache_actor_name(path: str | Path) -> str:
    return "tool-cache-" + hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]


@ray.remote(num_cpus=0, max_concurrency=1000)
class ToolCacheActor:
    """Owns the SQLite store: a single writer, so concurrent puts never contend on the file."""

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


def start_tool_cache(path: str | Path):
    """The driver's call: the job's cache actor (created, or found when it already runs)."""
    return ToolCacheActor.options(name=cache_actor_name(path), namespace=NAMESPACE,
                                  get_if_exists=True).remote(str(path))


class ActorResponseCache:
    """The `ResponseCache` protocol (async get/put) over the shared actor, for the executors."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def named(cls, name: str) -> "ActorResponseCache":
        return cls(ray.get_actor(name, namespace=NAMESPACE))

    async def get(self, key: str) -> Any:
        return await self.handle.get.remote(key)

    async def put(self, key: str, value: Any) -> None:
        await self.handle.put.remote(key, value)
