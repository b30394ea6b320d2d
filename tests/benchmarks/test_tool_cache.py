"""benchmarks/tool_cache.py runs end to end and prints the cache actor's lookups/s (small sizes:
the figure itself is measured by running it, not asserted here)."""
import pytest

from tests.benchmarks.conftest import run_benchmark

pytestmark = pytest.mark.integration


def test_tool_cache_benchmark_prints_lookups_per_second():
    r = run_benchmark("tool_cache.py", "--clients", "2", "--concurrency", "16", "--lookups", "400",
                      "--keys", "100", "--miss-rate", "0.25")
    assert r["lookups"] == 400 and r["lookups_per_s"] > 0 and r["window_s"] > 0
    # every miss was a key no one had: the actor's own count agrees with the clients'
    assert r["puts_after_misses"] == round(400 * (1 - r["hit_rate"]))
    assert 0.5 < r["hit_rate"] < 0.95
    # the prefilled responses and the misses' puts reached the run dir, in one part
    assert r["persist"]["entries"] == 100 + r["puts_after_misses"]
