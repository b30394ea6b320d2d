"""`toolweave run` stopped by SIGTERM / SIGINT mid-stage: a clean stop (exit 143 / 130, one line,
no traceback) after which no process of the run (Ray's, the actors) is left."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from toolweave.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parent.items() if pp == p} - found
        found |= kids
        todo += kids
    return found


def _instructions_run(run_dir, base_url: str, *, timeout_s: int, batch_size: int, limit: int) -> dict:
    """A build_toolset -> instructions chain on its own local Ray against the scripted server."""
    return {"run_dir": str(run_dir), "stages": ["build_toolset", "instructions"],
            "llm": {"engine": "endpoints", "endpoints": {"default": {
                "base_url": base_url, "model": "x", "is_vllm": False, "max_retries": 0, "timeout_s": timeout_s}}},
            "ray": {"num_cpus": 4, "object_store_memory": 100_000_000, "max_actors": 1},
            "run": {"batch_size": batch_size, "limit": limit},
            "toolsets": {"sources": [str(ROOT / "tests/data/toolalpaca/eval_simulated.json")]},
            "instructions": {"style": "toolalpaca", "per_tool": 1}}


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_stage_stops_the_run_cleanly_and_leaves_no_process(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    config = tmp_path / "run.yaml"
    # every LLM call hangs: the stage is mid-way (actors waiting on replies) when the signal comes
    with ScriptedServer(faults=lambda i, body: "hang") as srv:
        config.write_text(yaml.safe_dump(_instructions_run(run_dir, srv.base_url, timeout_s=120, batch_size=2, limit=4)))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
        proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.cli", "run", str(config)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not srv.requests:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no LLM call reached the server"
                time.sleep(0.2)
            run_procs = descendants(proc.pid)
            assert len(run_procs) >= 3  # Ray's GCS, raylet, the actor's worker at least
            proc.send_signal(sig)
            t0 = time.monotonic()
            out, err = proc.communicate(timeout=60)
            stop_s = time.monotonic() - t0
        finally:
            proc.kill()
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and "Error" not in err, err[-3000:]
    assert f"stopped by {sig.name}" in err and len(err.strip().splitlines()) <= 3, err
    deadline = time.monotonic() + 10
    while [p for p in run_procs if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in run_procs if _alive(p)}
    assert not left, f"processes of the run outlived it: {left}"
    assert stop_s < 30, stop_s


def test_a_sigkilled_driver_takes_its_ray_instance_along_and_nothing_commits_after_it(tmp_path):
    """SIGKILL leaves no handler to run: Ray's own fate sharing ends its GCS, raylet and workers, and
    training/ray_guard.py its agents (they waited ~60 s on the dead GCS); no batch commits after."""
    run_dir = tmp_path / "run"
    config = tmp_path / "run.yaml"
    # every reply is slow: batches commit one after another while the driver is killed
    with ScriptedServer(latency_s=0.5) as srv:
        config.write_text(yaml.safe_dump(_instructions_run(run_dir, srv.base_url, timeout_s=60, batch_size=1, limit=40)))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
        err = open(tmp_path / "stderr.txt", "w")
        proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.cli", "run", str(config)], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
        ledger = run_dir / "_ledger" / "instructions"
        try:
            deadline = time.monotonic() + 180  # Ray's start and the actor's imports, on a busy machine
            while not list(ledger.glob("part-*.parquet")):  # the stage is committing batches
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "no batch committed"
                time.sleep(0.1)
            run_procs = descendants(proc.pid)
            assert len(run_procs) >= 5  # GCS, raylet, the agents, the actor's worker, the guard
            proc.kill()
            proc.wait()
            t0 = time.monotonic()
            while [p for p in run_procs if _alive(p)] and time.monotonic() - t0 < 5:
                time.sleep(0.1)
            gone_s = time.monotonic() - t0
            committed = sorted(p.name for p in ledger.glob("part-*.parquet"))
            time.sleep(2)  # anything left would commit its batch in flight by now (0.5 s a reply)
            assert sorted(p.name for p in ledger.glob("part-*.parquet")) == committed
        finally:
            proc.kill()
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in run_procs if _alive(p)}
    assert not left, f"processes of the SIGKILLed run outlived it: {left}"
    assert gone_s < 5, gone_s
