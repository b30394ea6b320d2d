"""Persistent tool-response cache in SQLite (WAL): many episodes, threads and processes share it.

`INSERT OR IGNORE` makes the first write win, so two episodes that simulate the same call at the
same time both end up reading the same body.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class SqliteResponseCache:
    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._local = threading.local()  # one connection per thread: sqlite3 objects are not shared
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def get_sync(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put_sync(self, key: str, value: str) -> None:
        self._db().execute("INSERT OR IGNORE INTO responses (key, value) VALUES (?, ?)", (key, value))

    def __len__(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    async def get(self, key: str) -> str | None:
        return await asyncio.to_thread(self.get_sync, key)

    async def put(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.put_sync, key, value)

    def __reduce__(self):  # picklable for Ray: reopen the file on the other side
        return (type(self), (str(self.path), self.timeout_s))
