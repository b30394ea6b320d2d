"""`ray job submit` of a stage to a local `ray start --head` instance (then `ray stop`)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from toolweave import io
from toolweave.testing.scripted_server import ScriptedServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_head(temp_dir: str) -> None:
    """`ray stop` would end every Ray on this machine (other users' too): end only this head's
    processes, found by its temp dir."""
    import psutil
    procs = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if temp_dir in " ".join(p.info["cmdline"] or []):
            procs.append(p)
    for p in procs:
        p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=20)
    for p in alive:
        p.kill()


def test_submitted_build_toolset_job_runs_on_the_cluster(tmp_path):
    bin_dir = Path(sys.executable).parent
    temp_dir = tempfile.mkdtemp(prefix="twray", dir="/tmp")  # short: Ray's socket paths have a limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    gcs, dash = _free_port(), _free_port()
    # the scripted "LLM" writes no usable document: both catalogue entries must end as Rejects
    with ScriptedServer(handler=lambda body: "I cannot help with that.") as srv:
        config = tmp_path / "job.yaml"
        config.write_text(yaml.safe_dump({
            "run_dir": str(tmp_path / "run"), "stages": ["build_toolset"],
            "llm": {"engine": "endpoints", "endpoints": {"default": {
                "base_url": srv.base_url, "model": "scripted", "is_vllm": False, "max_retries": 0}}},
            "ray": {"actor_num_cpus": 0.25}, "run": {"show_progress": False},
            "toolsets": {"sources": [str(DATA / "toolalpaca" / "eval_simulated.json")],
                         "catalogue": str(DATA / "toolalpaca" / "public_apis.json"),
                         "catalogue_limit": 2, "max_attempts": 1}}))
        subprocess.run([bin_dir / "ray", "start", "--head", "--num-cpus", "8", "--port", str(gcs),
                        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                        "--object-store-memory", "200000000", "--temp-dir", temp_dir,
                        # other Ray instances on this machine may hold the default agent ports
                        "--dashboard-agent-listen-port", str(_free_port()),
                        "--dashboard-agent-grpc-port", str(_free_port()),
                        "--runtime-env-agent-port", str(_free_port()),
                        "--metrics-export-port", str(_free_port())],
                       env=env, check=True, capture_output=True, timeout=180)
        try:
            deadline = time.monotonic() + 180
            while True:  # the head's job agent comes up some seconds after `ray start` returns
                job = subprocess.run(
                    [bin_dir / "ray", "job", "submit", "--address", f"http://127.0.0.1:{dash}",
                     "--working-dir", str(ROOT), "--", "python", "-m", "ray_jobs.build_toolset",
                     "--config", str(config)],
                    env=env, capture_output=True, text=True, timeout=600)
                if "No available agent" not in job.stderr + job.stdout or time.monotonic() > deadline:
                    break
                time.sleep(5)
        finally:
            _stop_head(temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout.lower()
    run = tmp_path / "run"
    summary = json.loads((run / "build_toolset_summary.json").read_text())
    assert summary["processed"] == 2 and summary["failed"] == 2 and summary["runner"] == "ray"
    assert summary["imported_tools"] == 10
    rejects = list(io.iter_rows(run / "toolsets_rejects"))
    assert {r["source"] for r in rejects if r["stage"] == "build_toolset"} >= {"AdoptAPet"}
    assert len(io.existing_ids(run / "toolsets")) == 10
