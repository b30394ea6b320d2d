"""Persistent tool-response cache in SQLite (WAL): many episodes, threads and processes share it.

`INSERT OR IGNORE` makes the first write win, so two episodes that simulate the same call at the
same time both end up reading the same body.

Opening is safe under contention: the switch to WAL and the table creation take a write lock that
SQLite's busy handler does not always wait for (several processes opening a new file at once got
"database is locked" despite the busy timeout), so they are retried with backoff until `timeout_s`.
A file that is not a readable database (torn copy, disk fault) is moved aside as
`<name>.corrupt-<time>` with a warning and a new cache is built: a cache may lose entries, never a run.
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("toolweave.executors.cache")

_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_T = TypeVar("_T")


def _is_busy(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _is_io_fault(e: sqlite3.DatabaseError) -> bool:
    # another process moved a corrupt file (and its -shm) aside under an open connection
    return isinstance(e, sqlite3.OperationalError) and "disk i/o error" in str(e).lower()


def _is_new_file(e: sqlite3.DatabaseError) -> bool:
    # another process moved a corrupt file aside and this connection opened the new path before that
    # process made the table in it
    return "no such table" in str(e).lower()


def _is_corrupt(e: sqlite3.DatabaseError) -> bool:
    if isinstance(e, sqlite3.OperationalError):
        return False
    text = str(e).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


class SqliteResponseCache:
    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._local = threading.local()  # one connection per thread: sqlite3 objects are not shared
        self._recover_lock = threading.Lock()
        self._with_recovery(self._init_schema)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _init_schema(self) -> None:
        def init() -> None:
            with self._connect() as db:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads the header: corrupt?
            db.close()
        self._retry_busy(init)

    def _retry_busy(self, fn: Callable[[], _T]) -> _T:
        """`fn()`, retried with jittered backoff while SQLite says locked/busy, up to timeout_s."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if not _is_busy(e) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)

    def _with_recovery(self, fn: Callable[[], _T], attempts: int = 4) -> _T:
        """`fn()`; on a corrupt file: move it aside, rebuild, and run `fn()` again; on an I/O fault
        (the file was moved under this connection): reconnect and run it again; on a file without
        the table (made by this connection after a move): make the table and run it again."""
        for attempt in range(attempts):
            try:
                return fn()
            except sqlite3.DatabaseError as e:
                if attempt == attempts - 1 or not (_is_corrupt(e) or _is_io_fault(e) or _is_new_file(e)):
                    raise
                if _is_corrupt(e):
                    self._recover(e)
                elif _is_new_file(e):
                    self._drop_connection()
                    self._init_schema()
                else:
                    self._drop_connection()
                    time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _healthy(self) -> bool:
        try:
            self._init_schema()
            return True
        except sqlite3.DatabaseError as e:
            if _is_corrupt(e) or _is_io_fault(e):
                return False
            raise

    def _recover(self, cause: Exception) -> None:
        # threads of this process, then other processes (file lock): one of them moves the file;
        # the others find the new one healthy and leave it be
        with self._recover_lock, open(f"{self.path}.recover-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._drop_connection()
            if self._healthy():
                return
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
            log.warning("tool cache %s is corrupt (%s); moved it to %s and started a new one",
                        self.path, cause, aside)
            self._init_schema()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def get_sync(self, key: str) -> str | None:
        def get() -> str | None:
            row = self._retry_busy(
                lambda: self._db().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone())
            return row[0] if row else None
        return self._with_recovery(get)

    def put_sync(self, key: str, value: str) -> None:
        self._with_recovery(lambda: self._retry_busy(
            lambda: self._db().execute("INSERT OR IGNORE INTO responses (key, value) VALUES (?, ?)", (key, value))))

    def __len__(self) -> int:
        return self._with_recovery(lambda: self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    async def get(self, key: str) -> str | None:
        return await asyncio.to_thread(self.get_sync, key)

    async def put(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.put_sync, key, value)

    def __reduce__(self):  # picklable for Ray: reopen the file on the other side
        return (type(self), (str(self.path), self.timeout_s))
