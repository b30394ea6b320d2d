"""The tool-response cache every actor of a job shares: one Ray actor over a SQLite store.

The LLM-simulated executor asks the cache before the LLM, so the same tool call gets the same
response across episodes, actors and reruns. SQLite is never opened on shared storage (NFS
locking is not safe, an object store has no files to lock): the actor keeps its working copy on
its own node's local disk and persists a snapshot to the run dir (`<run_dir>/tool_cache.sqlite`,
a local/NFS path or an `s3://` URI, written whole through toolweave.io):

- at start it restores: the persisted snapshot is merged into the local copy (a restart on the
  same node keeps what its local file already had);
- every `persist_every_s` with new entries, and at `stop_tool_cache`, it snapshots the local copy
  (SQLite's backup API: consistent while writes go on), adds its new keys to what the run dir
  holds now (another run over the same run dir may have persisted since), and writes that back
  whole. Two snapshots written at the same moment can lose one's new keys (they are simulated
  again by a later run), never corrupt the file;
- a crash loses at most the entries since the last snapshot: those calls are simulated again.

First write wins (INSERT OR IGNORE), and the run dir's entry wins a merge, so a key's persisted
response never changes (two runs at once may each use their own for the rest of that run).
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

import ray

from toolweave import io
from toolweave.executors.base import ExecutorUnavailable

NAMESPACE = "toolweave"
PERSIST_EVERY_S = 60.0


def cache_actor_name(path: str | Path, run_token: str) -> str:
    return f"tool-cache-{hashlib.sha256(io.location(path).encode()).hexdigest()[:16]}-{run_token[:12]}"


def local_copy_path(name: str) -> Path:
    """The working copy on this node's local disk (the same name after a restart on this node)."""
    return Path(tempfile.gettempdir()) / "toolweave-tool-cache" / f"{name}.sqlite"


def merge_into(target: Path, source: Path) -> int:
    """Add `source`'s responses that `target` lacks (first write wins); how many were added."""
    db = sqlite3.connect(target, timeout=30, isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS other", (str(source),))
        before = db.total_changes
        db.execute("INSERT OR IGNORE INTO main.responses (key, value) SELECT key, value FROM other.responses")
        added = db.total_changes - before
        db.execute("DETACH DATABASE other")
        return added
    finally:
        db.close()


def _fetch(persisted: str, scratch: Path) -> Path | None:
    """The persisted snapshot as a local file under `scratch` (None when there is none yet)."""
    data = io.read_bytes(persisted)
    if data is None:
        return None
    path = scratch / "persisted.sqlite"
    path.write_bytes(data)
    return path


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1, max_task_retries=3)
class ToolCacheActor:
    """Owns this run's working copy (get/put in threads, WAL) and its snapshots to the run dir."""

    def __init__(self, persisted: str, name: str = "tool-cache", persist_every_s: float = PERSIST_EVERY_S):
        from toolweave.executors import SqliteResponseCache
        self.persisted = io.location(persisted)
        self.local = local_copy_path(name)
        self.local.parent.mkdir(parents=True, exist_ok=True)
        self.cache = SqliteResponseCache(self.local)  # creates the table
        with tempfile.TemporaryDirectory(dir=self.local.parent) as scratch:
            snapshot = _fetch(self.persisted, Path(scratch))
            self.restored = merge_into(self.local, snapshot) if snapshot else 0
        self.persist_every_s = persist_every_s
        self.hits = self.misses = self.puts = 0
        self.persisted_puts = 0  # puts already in a snapshot
        self.persists = 0
        self._persist_lock: asyncio.Lock | None = None
        self._timer: asyncio.Task | None = None

    def _start_timer(self) -> None:
        if self._timer is None and self.persist_every_s > 0:
            self._persist_lock = asyncio.Lock()
            self._timer = asyncio.get_running_loop().create_task(self._persist_periodically())

    async def _persist_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.persist_every_s)
            if self.puts > self.persisted_puts:
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

    async def persist(self) -> dict[str, Any]:
        """Snapshot the local copy, merge the run dir's, write it back whole; what was written."""
        self._persist_lock = self._persist_lock or asyncio.Lock()
        async with self._persist_lock:  # one snapshot at a time
            puts = self.puts
            result = await asyncio.to_thread(self._persist_sync)
            self.persisted_puts = puts
            self.persists += 1
            return result

    def _persist_sync(self) -> dict[str, Any]:
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.local.parent) as scratch:
            snap = Path(scratch) / "snapshot.sqlite"
            src, dst = sqlite3.connect(self.local, timeout=30), sqlite3.connect(snap)
            try:
                src.backup(dst)  # consistent even while puts go on
            finally:
                src.close()
                dst.close()
            theirs = _fetch(self.persisted, Path(scratch))
            if theirs is None:
                merged, data = None, snap.read_bytes()
            else:  # the run dir's entries win: a persisted response never changes
                merged = merge_into(theirs, snap)
                data = theirs.read_bytes()
            io.write_bytes(self.persisted, data)
        return {"bytes": len(data), "added_to_run_dir": merged, "seconds": round(time.monotonic() - t0, 3)}

    def stats(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "puts": self.puts, "restored": self.restored,
                "persists": self.persists, "local": str(self.local), "node_id": ray.get_runtime_context().get_node_id()}

    def drop_local_copy(self) -> None:
        """After the final snapshot: the working copy (and its WAL) leave the node's disk."""
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
    """The driver's call when the stage ends: a final snapshot to the run dir, then the actor goes."""
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
