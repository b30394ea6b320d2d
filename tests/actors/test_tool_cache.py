"""The shared tool-response cache actor: one per stage run, SQLite on the actor's local disk,
new entries persisted to the run dir as Parquet parts (a local path or an s3:// URI) and
restored from them."""
import asyncio
import os
import time
from pathlib import Path

import pytest

from toolweave import io
from toolweave.executors import ExecutorUnavailable

pytestmark = pytest.mark.integration
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

BODY = '{"status_code": 200, "body": "sunny"}'


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from training.ray_init import init_ray
    from toolweave.config import RunConfig
    init_ray(RunConfig(ray={"num_cpus": 4, "object_store_memory": 100_000_000}))
    yield
    ray.shutdown()


def test_cache_actor_per_run_shares_the_file_and_a_dead_one_fails_loudly(local_ray, tmp_path):
    import ray

    from actors.tool_cache import ActorResponseCache, cache_actor_name, start_tool_cache, stop_tool_cache
    path = tmp_path / "tool_cache"
    first = start_tool_cache(path, "run-a")
    cache = ActorResponseCache.named(cache_actor_name(path, "run-a"))
    asyncio.run(cache.put("call", BODY))
    local = ray.get(first.stats.remote())["local"]
    assert not local.startswith(str(tmp_path))  # SQLite lives on the node's disk, not in the run dir
    assert ray.get(first.persist.remote())["entries"] == 1  # what reaches the run dir: a part
    # another run over the same run dir: its own actor (killing one never stops the other's
    # episodes), the same responses
    second = start_tool_cache(path, "run-b")
    other = ActorResponseCache.named(cache_actor_name(path, "run-b"))
    assert asyncio.run(other.get("call")) == BODY
    ray.kill(first, no_restart=True)
    # a gone cache is not a tool answer: the episode fails and says why
    with pytest.raises(ExecutorUnavailable, match="tool-response cache failed"):
        asyncio.run(cache.get("call"))
    assert asyncio.run(other.get("call")) == BODY
    stop_tool_cache(second)
    for suffix in ("", "-wal", "-shm"):  # the killed one's working copy (stop_tool_cache drops its own)
        Path(f"{local}{suffix}").unlink(missing_ok=True)


def test_runs_persist_parts_of_their_own_and_survive_a_crash(local_ray, tmp_path):
    import ray

    from actors.tool_cache import ActorResponseCache, cache_actor_name, start_tool_cache, stop_tool_cache
    path = tmp_path / "tool_cache"
    a, b = start_tool_cache(path, "run-a"), start_tool_cache(path, "run-b")
    ca, cb = (ActorResponseCache.named(cache_actor_name(path, t)) for t in ("run-a", "run-b"))
    asyncio.run(ca.put("only-a", "A"))
    asyncio.run(ca.put("both", "first"))
    stop_tool_cache(a)
    asyncio.run(cb.put("only-b", "B"))
    asyncio.run(cb.put("both", "second"))  # b never saw a's: its own first write
    assert stop_tool_cache(b)["entries"] == 2  # a part of its own: a's is never rewritten
    assert len(io.part_files(path)) == 2
    c = start_tool_cache(path, "run-c")
    cc = ActorResponseCache.named(cache_actor_name(path, "run-c"))
    assert asyncio.run(cc.get("only-a")) == "A" and asyncio.run(cc.get("only-b")) == "B"
    assert asyncio.run(cc.get("both")) == "first"  # a persisted response never changes
    assert ray.get(c.stats.remote())["restored"] == 3
    # a crash: the actor restarts on this node and keeps its local copy
    asyncio.run(cc.put("after-restore", "C"))
    ray.kill(c, no_restart=False)
    for _ in range(100):
        try:
            if ray.get(c.stats.remote(), timeout=5)["puts"] == 0:
                break
        except ray.exceptions.RayError:
            time.sleep(0.2)
    assert asyncio.run(cc.get("after-restore")) == "C"
    stop_tool_cache(c)  # the restarted actor persists what its dead process had not
    d = start_tool_cache(path, "run-d")
    assert asyncio.run(ActorResponseCache.named(cache_actor_name(path, "run-d")).get("after-restore")) == "C"
    stop_tool_cache(d)


def test_the_parts_go_to_an_object_store_run_dir(local_ray, tmp_path):
    import ray

    from actors.tool_cache import ActorResponseCache, cache_actor_name, start_tool_cache, stop_tool_cache
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root:
        path = f"{root}/run/tool_cache"
        # the actor's process reads the same endpoint: a fresh actor gets the driver's env
        env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}
        first = start_tool_cache(path, "s3-a", runtime_env={"env_vars": env})
        asyncio.run(ActorResponseCache.named(cache_actor_name(path, "s3-a")).put("k", "v"))
        assert stop_tool_cache(first)["entries"] == 1 and len(io.part_files(path)) == 1
        second = start_tool_cache(path, "s3-b", runtime_env={"env_vars": env})
        assert asyncio.run(ActorResponseCache.named(cache_actor_name(path, "s3-b")).get("k")) == "v"
        assert ray.get(second.stats.remote())["restored"] == 1
        stop_tool_cache(second)


def test_new_entries_are_persisted_periodically(local_ray, tmp_path):
    import ray

    from actors.tool_cache import ActorResponseCache, cache_actor_name, start_tool_cache, stop_tool_cache
    path = tmp_path / "tool_cache"
    handle = start_tool_cache(path, "run-p", persist_every_s=0.5)
    asyncio.run(ActorResponseCache.named(cache_actor_name(path, "run-p")).put("k", "v"))
    deadline = time.monotonic() + 30
    while ray.get(handle.stats.remote())["persists"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert io.part_files(path) and ray.get(handle.stats.remote())["pending"] == 0
    assert stop_tool_cache(handle)["entries"] == 0  # nothing new since: an empty persist writes nothing
    assert len(io.part_files(path)) == 1
