"""The shared tool-response cache actor: one per stage run, over the run dir's SQLite file."""
import asyncio
import os

import pytest

from toolweave.executors import ExecutorUnavailable

pytestmark = pytest.mark.integration
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def test_cache_actor_per_run_shares_the_file_and_a_dead_one_fails_loudly(tmp_path):
    import ray

    from actors.tool_cache import ActorResponseCache, cache_actor_name, start_tool_cache
    from ray_jobs.runtime import init_ray
    from toolweave.config import RunConfig
    path = tmp_path / "tool_cache.sqlite"
    init_ray(RunConfig(ray={"num_cpus": 4, "object_store_memory": 100_000_000}))
    try:
        first = start_tool_cache(path, "run-a")
        cache = ActorResponseCache.named(cache_actor_name(path, "run-a"))
        asyncio.run(cache.put("call", '{"status_code": 200, "body": "sunny"}'))
        # another run over the same run dir: its own actor (killing one never stops the other's
        # episodes), the same responses
        second = start_tool_cache(path, "run-b")  # noqa: F841 - its handle keeps it alive
        other = ActorResponseCache.named(cache_actor_name(path, "run-b"))
        assert asyncio.run(other.get("call")) == '{"status_code": 200, "body": "sunny"}'
        ray.kill(first, no_restart=True)
        # a gone cache is not a tool answer: the episode fails and says why
        with pytest.raises(ExecutorUnavailable, match="tool-response cache failed"):
            asyncio.run(cache.get("call"))
        assert asyncio.run(other.get("call")) == '{"status_code": 200, "body": "sunny"}'
    finally:
        ray.shutdown()
