"""benchmarks/tool_cache.py runs end to end and prints the cache actor's lookups/s (small sizes:
the figure itself is measured by running it, not asserted here)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def test_tool_cache_benchmark_prints_lookups_per_second():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tool_cache.py"), "--clients", "2",
                          "--concurrency", "16", "--lookups", "400", "--keys", "100", "--miss-rate", "0.25"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout[out.stdout.index("{"):])
    assert r["lookups"] == 400 and r["lookups_per_s"] > 0 and r["window_s"] > 0
    # every miss was a key no one had: the actor's own count agrees with the clients'
    assert r["puts_after_misses"] == round(400 * (1 - r["hit_rate"]))
    assert 0.5 < r["hit_rate"] < 0.95
    assert r["snapshot"]["bytes"] > 100 * 1000  # the prefilled responses reached the run dir
