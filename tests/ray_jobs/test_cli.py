"""`toolweave run` on a local Ray: a quiet terminal (failed records with their reason, a line per
stage, the summary table), everything else in <run_dir>/logs/."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def test_run_prints_failures_and_the_summary_and_logs_the_rest(tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "run_dir": str(run_dir), "stages": ["build_toolset", "instructions"],
        # nothing listens on port 9: every generation fails, and says why
        "llm": {"engine": "endpoints", "endpoints": {"default": {
            "base_url": "http://127.0.0.1:9/v1", "model": "x", "is_vllm": False, "max_retries": 0, "timeout_s": 5}}},
        "ray": {"num_cpus": 4, "object_store_memory": 100_000_000, "max_actors": 1},
        "run": {"batch_size": 4, "limit": 5},
        "toolsets": {"sources": [str(ROOT / "tests/data/toolalpaca/eval_simulated.json")]},
        "instructions": {"style": "toolalpaca", "per_tool": 1}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "run", str(config)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout == ""  # the terminal output is on stderr, like any progress display
    lines = out.stderr.splitlines()
    failed = [x for x in lines if "instructions: record" in x]
    assert len(failed) == 3 and all("failed: tool" in x and "Cannot connect" in x for x in failed), lines
    assert any("2 more failed records" in x for x in lines)
    assert any(x.startswith("instructions: 5/5 records (5 failed") for x in lines)
    assert any("build_toolset" in x and "imported_tools 10" in x for x in lines)  # the summary table
    assert not [x for x in lines if "WARNING" in x or "Warning" in x or "Failed to" in x], lines
    assert len(lines) <= 20, lines
    assert (run_dir / "logs" / "output.log").stat().st_size > 0  # Ray's own messages went there
    assert (run_dir / "run_summary.json").exists()


def test_a_chain_that_trains_on_unverified_episodes_stops_before_any_stage(tmp_path, capsys):
    from ray_jobs.cli import run_from_cli
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": ["solve", "sft_data", "train"]}))
    assert run_from_cli("run", str(config), []) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "sft_data: verify.require is" in line and "has no verify stage" in line
    assert not (tmp_path / "run").exists()  # nothing ran
