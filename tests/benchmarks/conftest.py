"""Benchmarks run as their users run them: a script in its own process, JSON on stdout."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_benchmark(script: str, *args: str, timeout_s: float = 300) -> dict:
    """Run benchmarks/<script> with `args`; its JSON result (the test fails on a non-zero exit)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout[out.stdout.index("{"):])
