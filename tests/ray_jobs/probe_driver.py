"""A driver that runs the probe stage on a local Ray (the kill-and-resume tests SIGKILL it), and
the tests' helpers that start it, kill it midway and rerun it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ray_jobs.pipeline import run_records
from ray_jobs.runtime import ray_session
from toolweave.config import RunConfig
from toolweave.stages import probe

ROOT = Path(__file__).parents[2]


def _cmd(cfg: RunConfig) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    return [sys.executable, str(Path(__file__)), cfg.model_dump_json()], env


def kill_midway(cfg: RunConfig, min_done: int, timeout_s: float = 180) -> set[str]:
    """Start the driver, SIGKILL it once `min_done` inputs are committed; the inputs done then."""
    from toolweave import io
    from toolweave.stages import ledger
    cmd, env = _cmd(cfg)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    led = io.join(cfg.path("_ledger", "probe"))
    deadline = time.monotonic() + timeout_s
    while len(ledger.done_inputs(led)) < min_done:  # midway: some batches committed, most not
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no batch committed in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return ledger.done_inputs(led)


def rerun(cfg: RunConfig, timeout_s: float = 300) -> dict:
    """Run the driver to its end; its summary."""
    time.sleep(3)  # the killed job's Ray processes go with their driver
    cmd, env = _cmd(cfg)
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(next(x for x in done.stdout.splitlines() if x.startswith("SUMMARY "))[8:])


if __name__ == "__main__":
    cfg = RunConfig.model_validate_json(sys.argv[1])
    with ray_session(cfg):
        print("SUMMARY " + json.dumps(run_records(cfg, probe.STAGE)), flush=True)
