"""The tool-response cache of a run that may live on shared storage: SQLite only on this machine's
local disk, the responses persisted to the run dir as Parquet parts of (`key`, `value`).

SQLite is never opened on shared storage (NFS locking is not safe, an object store has no files to
lock). The run dir keeps a dataset of parts at the given path (a local/NFS path or an `s3://` URI,
through toolweave.io):

- at start the working copy restores every part, oldest first (a restart on the same machine
  keeps what its local file already had, and what no part holds is pending again);
- `persist()` writes the entries added since the last persist as one new part, named by time.
  Parts are written once and never rewritten: a persist costs what is new, and two runs over one
  run dir never overwrite each other's;
- a crash loses at most the entries since the last persist: those calls are simulated again.

First write wins (INSERT OR IGNORE) locally and on restore (oldest part first), so a key's
persisted response never changes. The Ray runner shares one such cache per stage run in an actor
(actors/tool_cache.py); the in-process runner holds its own (toolweave/stages/episodes.py).
"""
from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from toolweave import io
from toolweave.executors.cache import SqliteResponseCache
from toolweave.safe_read import check_own_file

PART_SCHEMA = pa.schema([("key", pa.string()), ("value", pa.string())])


def local_copy_path(name: str) -> Path:
    """The working copy on this machine's local disk (the same name after a restart here)."""
    return Path(tempfile.gettempdir()) / "toolweave-tool-cache" / f"{name}.sqlite"


def restore_into(local: Path, persisted: str | Path) -> tuple[int, dict[str, str]]:
    """Add the persisted responses the local copy lacks, oldest part first. Returns how many were
    added and the local entries that no part holds (a restarted process's unpersisted ones)."""
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


class PersistedResponseCache:
    """The `ResponseCache` protocol (async get/put) over a local SQLite working copy, persisted
    to `persisted` (a dataset dir in the run dir) by `persist()`."""

    def __init__(self, persisted: str | Path, name: str = "tool-cache"):
        self.persisted = io.location(persisted)
        self.name = name
        self.local = local_copy_path(name)
        self.local.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):  # in a shared temp dir: no FIFO, device or planted link
            check_own_file(f"{self.local}{suffix}")
        self.cache = SqliteResponseCache(self.local)  # creates the table
        # after a restart on this machine, what the dead process added but never persisted is pending
        self.restored, self.pending = restore_into(self.local, self.persisted)
        self.hits = self.misses = self.puts = 0
        self.persists = 0
        self._persist_lock: asyncio.Lock | None = None

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

    def drop_local_copy(self) -> None:
        """After the final persist: the working copy (and its WAL) leave the local disk."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.local}{suffix}").unlink(missing_ok=True)
