"""The SQLite tool cache under contention and corruption."""
import logging

from toolweave.executors import SqliteResponseCache
from toolweave.testing.processes import concurrent_cache_opens


def test_concurrent_opens_of_a_new_file_never_raise_locked(tmp_path):
    for round_ in range(3):
        results = concurrent_cache_opens(tmp_path / f"new-{round_}.sqlite")
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
    results = concurrent_cache_opens(path, processes=4)
    assert [r for r in results if r[0] != "ok"] == []
    assert len(SqliteResponseCache(path)) == 20
