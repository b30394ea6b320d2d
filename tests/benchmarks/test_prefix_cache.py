"""benchmarks/prefix_cache.py runs a DFSDT solve against the session's embedded engine and prints
the prefix-cache hit rate from vLLM's /metrics (smallest size: the figure itself is measured by
running it, not asserted here)."""
import pytest

from tests.benchmarks.conftest import run_benchmark

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_prefix_cache_benchmark_reads_the_engines_counters(embedded_base_url):
    r = run_benchmark("prefix_cache.py", "--base-url", embedded_base_url, "--instructions", "1", "--width", "2",
                      "--max-steps", "2", "--max-llm-calls", "3", "--max-tokens", "24", timeout_s=900)
    assert r["engine"] == "base_url" and r["replicas"] == 1 and r["instructions"] == 1
    assert 1 <= r["llm_calls"] <= 3 and sum(r["episode_statuses"].values()) == 1
    # the engine's own counters moved by this run's requests (nobody else uses the engine meanwhile)
    assert r["requests"] == r["llm_calls"] and r["prompt_tokens"] > 0
    assert 0 < r["queries"] and 0 <= r["hits"] <= r["queries"]
    assert 0 <= r["hit_rate"] <= 1 and r["hit_rate"] == round(r["hits"] / r["queries"], 4)
    assert r["ratio_to_target"] == round(r["hit_rate"] / 0.85, 4)
    [replica] = r["per_replica"]
    assert replica["replica"] == "" and replica["queries"] == r["queries"]
