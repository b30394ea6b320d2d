"""The persisted tool cache reads only what it should: its working copy in the shared temp dir must be
a regular file of its own, and a special file among the run dir's parts is never opened."""
from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from toolweave.executors.persisted_cache import PersistedResponseCache, local_copy_path
from toolweave.safe_read import UnreadableFile


@pytest.mark.parametrize("plant", ["fifo", "link"])
def test_a_planted_working_copy_is_refused_by_name_at_once(tmp_path, plant):
    name = f"t22-{uuid.uuid4().hex}"
    local = local_copy_path(name)
    local.parent.mkdir(parents=True, exist_ok=True)
    if plant == "fifo":
        os.mkfifo(local)  # SQLite's open of it would wait for a writer forever
    else:
        (tmp_path / "elsewhere.sqlite").write_bytes(b"")
        local.symlink_to(tmp_path / "elsewhere.sqlite")  # its writes would land in another's file
    try:
        t = time.monotonic()
        with pytest.raises(UnreadableFile, match="not a regular file; not used") as e:
            PersistedResponseCache(tmp_path / "tool_cache", name=name)
        assert time.monotonic() - t < 2 and e.value.filename == str(local)
    finally:
        local.unlink()


def test_a_fifo_among_the_parts_is_skipped_and_the_real_parts_restore(tmp_path):
    name = f"t22-{uuid.uuid4().hex}"
    first = PersistedResponseCache(tmp_path / "tool_cache", name=name)
    asyncio.run(first.put("k", "v"))
    asyncio.run(first.persist())
    first.drop_local_copy()
    os.mkfifo(tmp_path / "tool_cache" / "part-0-fifo.parquet")
    t = time.monotonic()
    again = PersistedResponseCache(tmp_path / "tool_cache", name=name)
    try:
        assert time.monotonic() - t < 2 and again.restored == 1
        assert asyncio.run(again.get("k")) == "v"
    finally:
        again.drop_local_copy()
