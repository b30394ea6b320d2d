"""The SQLite tool cache under contention and corruption."""
import logging
import multiprocessing as mp
import time

from toolweave.executors import SqliteResponseCache


def _open_and_write(path, i, start_at, q):
    try:
        while time.time() < start_at:  # every process opens the new file at the same moment
            time.sleep(0.001)
        cache = SqliteResponseCache(path, timeout_s=30)
        for k in range(20):
            cache.put_sync(f"k{k}", f"from-{i}")
        q.put(("ok", [cache.get_sync(f"k{k}") for k in range(20)]))
    except Exception as e:  # reported to the test, which fails on it
        q.put(("error", f"{type(e).__name__}: {e}"))


def concurrent_opens(path, n: int = 8) -> list:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_open_and_write, args=(path, i, start_at, q)) for i in range(n)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return results


def test_concurrent_opens_of_a_new_file_never_raise_locked(tmp_path):
    for round_ in range(3):
        results = concurrent_opens(tmp_path / f"new-{round_}.sqlite")
        assert [r for r in results if r[0] != "ok"] == []
        assert len({tuple(r[1]) for r in results}) == 1  # the first write won everywhere


def test_a_corrupt_file_is_moved_aside_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="toolweave.executors.cache"):
        cache = SqliteResponseCache(path)
    cache.put_sync("k", "v")
    assert cache.get_sync("k") == "v"
    assert [p.name for p in tmp_path.glob("cache.sqlite.corrupt-*")]
    assert "is corrupt" in caplog.text


def test_corruption_found_by_several_processes_at_once(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"\0garbage" * 1000)
    results = concurrent_opens(path, n=4)
    assert [r for r in results if r[0] != "ok"] == []
    assert len(SqliteResponseCache(path)) == 20
