"""benchmarks/orchestration.py runs end to end and prints its ratios (small sizes: the numbers
themselves are measured by running it, not asserted here). Run across two nodes of a local cluster
(its one start-up serves both runs); the single-instance mode differs only in `ray_session`."""
import pytest

from tests.benchmarks.conftest import run_benchmark

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.slow]


def test_orchestration_benchmark_across_nodes_prints_both_ratios_with_one_actor_on_each():
    result = run_benchmark("orchestration.py", "--nodes", "2", "--concurrency", "40", "--calls", "2", "--latency",
                           "0.2", "--waves", "4", "--batch-size", "10", timeout_s=600)
    assert result["nodes"] == 2 and result["actors"] == 2
    assert result["limit_episodes_per_s"] == 40 / (2 * 0.2)
    for run, episodes in (("one_wave", 40), ("sustained", 160)):
        r = result[run]
        assert r["episodes"] == episodes and r["failed"] == 0 and r["llm_calls"] == 2 * episodes
        assert 0 < r["ratio"] <= 1.05 and r["window_s"] >= 2 * 0.2 * episodes / 40 * 0.95
        assert 0 < r["cpu_ms_per_call"] < 50
        assert 0 < r["peak_requests_in_flight"] <= 40
        assert r["actor_nodes"] == 2  # Ray's record: the two actors on the two simulate nodes
    assert result["one_wave"]["steady"] is None  # one episode time: no middle without ramp-up and drain
    steady = result["sustained"]["steady"]
    assert steady["window_s"] >= (4 - 2) * 2 * 0.2 * 0.9 and 0 < steady["llm_calls"] < 2 * 160
    # a window of 4 call latencies where each wave's 40 replies land together: one wave more or less
    # at an edge moves the ratio by 1/4
    assert 0 < steady["ratio"] <= 1.3
    assert result["ratio"] == result["sustained"]["ratio"] and result["cores"] >= 1
    assert result["client_cores_at_limit"] == pytest.approx(result["cpu_ms_per_call"] * 40 / 0.2 / 1000, abs=0.01)
