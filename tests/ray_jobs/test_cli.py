"""`toolweave run` on a local Ray: a quiet terminal (failed records with their reason, a line per
stage, the summary table), everything else in <run_dir>/logs/."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
    line, inputs = capsys.readouterr().err.strip().splitlines()  # one line per problem
    assert "sft_data: verify.require is" in line and "has no verify stage" in line
    assert "solve reads instructions, which no stage before it writes" in inputs
    assert not (tmp_path / "run").exists()  # nothing ran


# `toolweave serve` with vLLM's server swapped for a cheap fake one (toolweave/testing/fake_engine.py)
SERVE_DRIVER = """
import sys
import toolweave.llm.engine as engine
engine.server_args = lambda cfg, model_dir, port: [
    sys.executable, "-m", "toolweave.testing.fake_engine", str(port), cfg.served_name]
from ray_jobs.cli import main
sys.exit(main(["serve", sys.argv[1]]))
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_the_front_and_a_signal_stops_front_and_engine(tmp_path, sig):
    run_dir = tmp_path / "run"
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(run_dir), "llm": {
        "engine": "embedded", "embedded": {"model": "/no/model", "served_name": "tiny", "startup_timeout_s": 60}}}))
    driver = subprocess.Popen([sys.executable, "-c", SERVE_DRIVER, str(config)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = driver.stdout.readline().strip()
        line = next(x for x in (run_dir / "logs" / "engine.log").read_text().splitlines() if x.startswith("pids"))
        server, child = map(int, line.split()[1:])
        guard = int(Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the server's parent
        engine_port = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")[3].decode()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1") and f":{engine_port}/" not in url
        assert httpx.get(url + "/models", timeout=10).json()["data"][0]["id"] == "tiny"  # through the front
        driver.send_signal(sig)
        driver.wait(30)
    finally:
        driver.kill()
    deadline = time.monotonic() + 20
    while any(_running(p) for p in (guard, server, child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in (guard, server, child) if _running(p)], "engine processes outlived `toolweave serve`"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/models", timeout=5)


def test_serve_refuses_a_replica_no_node_kind_holds_before_starting_anything(tmp_path, capsys):
    from ray_jobs.cli import run_from_cli
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump({"head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 8}}, "cpu": {"resources": {"CPU": 8}, "max_workers": 2}}}))
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "ray": {"cluster": str(cluster)}, "llm": {
        "engine": "serve", "deployments": [{"model_id": "m", "model_source": "/m"}]}}))
    assert run_from_cli("serve", str(config), []) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "llm.deployments m replica (tensor_parallel_size 1) asks for {CPU: 2, vllm: 1, GPU: 1} on one node" in line
