"""The tool-response cache every actor of a job shares: one Ray actor over a SQLite store.

The LLM-simulated executor asks the cache before the LLM, so the same tool call gets the same
response across episodes, actors and reruns. SQLite is never opened on shared storage (NFS
locking is not safe, an object store has no files to lock): the actor keeps its working copy on
its own node's local disk, and the run dir keeps the responses as a dataset of Parquet parts
(`key`, `value`) at the given path (a local/NFS path or an `s3://` URI, through toolweave.io):

- at start it restores: every part, oldest first, is added to the local copy (a restart on the
  same node keeps what its local file already had);
- every `persist_every_s` with new entries, and at `stop_tool_cache`, the entries it added since
  the last time are written as one new part, named by time. Parts are written once and never
  rewritten: a persist costs what is new (not the whole cache, which reaches gigabytes at
  ToolBench scale), and two runs over one run dir never overwrite each other's;
- a crash loses at most the entries since the last persist: those calls are simulated again.

First write wins (INSERT OR IGNORE) locally and on restore (oldest part first), so a key's
persisted response never changes (two runs at once may each use their own for the rest of that run).
One named actor per stage run, created by that run's driver (which alone stops it) and found by
name in its worker actors.
"""
from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from toolweave import io
from toolweave.executors.base import ExecutorUnavailable

NAMESPACE = "toolweave"
PERSIST_EVERY_S = 60.0
PART_SCHEMA = pa.schema([("key", pa.string()), ("value", pa.string())])


def cache_actor_name(path: str | Path, run_token: str) -> str:
    return f"tool-cache-{hashlib.sha256(io.location(path).encode()).hexdigest()[:16]}-{run_token[:12]}"


def local_copy_path(name: str) -> Path:
    """The working copy on this node's local disk (the same name after a restart on this node)."""
    return Path(tempfile.gettempdir()) / "toolweave-tool-cache" / f"{name}.sqlite"


def restore_into(local: Path, persisted: str | Path) -> tuple[int, dict[str, str]]:
    """Add the persisted responses the local copy lacks, oldest part first. Returns how many were
    added and the local entries that no part holds (a restarted actor's unpersisted ones)."""
    db = sqlite3.connect(local, timeout=30, isolation_level=None)
    try:
        db.execute("CREATE TEMP TABLE persisted (key TEXT PRIMARY KEY)")
        added = 0
        for part in io.part_files(persisted):  # names start with the time they were written
            if not str(part).endswith(".parquet"):
                continue  # not a part (a SQLite file an older version kept at this path)
            rows = [(r["key"], r["value"]) for r in io.iter_rows(part)]
            start = db.total_changes
            db.executemany("INSERT OR IGNORE INTO main.responses (key, value) VALUES (?, ?)", rows)
            added += db.total_changes - start
            db.executemany("INSERT OR IGNORE INTO temp.persisted (key) VALUES (?)", [(k,) for k, _ in rows])
        local_only = dict(db.execute("SELECT key, value FROM main.responses WHERE key NOT IN "
                                     "(SELECT key FROM temp.persisted)"))
        return added, local_only
    finally:
        db.close()


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1, max_task_retries=3)
class ToolCacheActor:
    """Owns this run's working copy (get/put in threads, WAL) and its parts in the run dir."""

    def __init__(self, persisted: str, name: str = "tool-cache", persist_every_s: float = PERSIST_EVERY_S):
        from toolweave.executors import SqliteResponseCache
        self.persisted = io.location(persisted)
        self.name = name
        self.local = local_copy_path(name)
        self.local.parent.mkdir(parents=True, exist_ok=True)
        self.cache = SqliteResponseCache(self.local)  # creates the table
        # after a restart on this node, what the dead process added but never persisted is pending
        self.restored, self.pending = restore_into(self.local, self.persisted)
        self.persist_every_s = persist_every_s
        self.hits = self.misses = self.puts = 0
        self.persists = 0
        self._persist_lock: asyncio.Lock | None = None
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
        value = await self.cache.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def put(self, key: str, value: Any) -> None:
        self._start_timer()
        self.puts += 1
        await self.cache.put(key, value)
        if key not in self.pending and await self.cache.get(key) == value:  # ours, not an earlier write
            self.pending[key] = value

    async def persist(self) -> dict[str, Any]:
        """Write the entries added since the last persist as one new part; what was written."""
        self._persist_lock = self._persist_lock or asyncio.Lock()
        async with self._persist_lock:  # one part at a time
            batch, self.pending = self.pending, {}
            t0 = time.monotonic()
            try:
                path = await asyncio.to_thread(self._write_part, batch)
            except BaseException:
                self.pending = {**batch, **self.pending}  # kept for the next try
                raise
            self.persists += 1
            return {"entries": len(batch), "part": str(path) if path else None,
                    "seconds": round(time.monotonic() - t0, 3)}

    def _write_part(self, batch: dict[str, str]):
        table = pa.table({"key": list(batch), "value": list(batch.values())}, schema=PART_SCHEMA)
        return io.write_table_part(table, self.persisted, name=f"{time.time_ns():020d}-{self.name}-{self.persists:06d}")

    def stats(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "puts": self.puts, "restored": self.restored,
                "persists": self.persists, "pending": len(self.pending), "local": str(self.local),
                "node_id": ray.get_runtime_context().get_node_id()}

    def drop_local_copy(self) -> None:
        """After the final persist: the working copy (and its WAL) leave the node's disk."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.local}{suffix}").unlink(missing_ok=True)


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
