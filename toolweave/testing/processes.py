"""Tests that need several processes hitting one resource at the same moment (never a product default)."""
from __future__ import annotations

import multiprocessing as mp
import time

from toolweave.executors.cache import SqliteResponseCache


def _open_write_read(path, i: int, keys: int, start_at: float, q) -> None:
    try:
        while time.time() < start_at:  # every process opens the file at the same moment
            time.sleep(0.0005)
        cache = SqliteResponseCache(path, timeout_s=30)
        for k in range(keys):
            cache.put_sync(f"k{k}", f"from-{i}")
        q.put(("ok", tuple(cache.get_sync(f"k{k}") for k in range(keys))))
    except Exception as e:  # reported to the test, which fails on it
        q.put(("error", f"{type(e).__name__}: {e}"))


def concurrent_cache_opens(path, processes: int = 8, keys: int = 20) -> list[tuple[str, object]]:
    """`processes` forked processes open the SQLite cache at `path` at once, write `keys` keys and
    read them back: [("ok", values read) | ("error", what was raised)], one per process."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start_at = time.time() + 0.3
    procs = [ctx.Process(target=_open_write_read, args=(path, i, keys, start_at, q)) for i in range(processes)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return results
