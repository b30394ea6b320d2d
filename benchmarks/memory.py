"""Streaming, not accumulating: peak RSS of the driver and of a pipeline actor when a stage runs
1k episodes versus 100k (one call each, a scripted server with no latency). Prints the ratios
(target <= 1.2 each).

    python benchmarks/memory.py [--small 1000] [--large 100000]

Each size runs in a fresh driver process (peak RSS is per process: VmHWM from /proc); the
scripted server runs in its own process so its request log is not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

SERVER = """
import sys, time
from toolweave.testing.scripted_server import ScriptedServer
srv = ScriptedServer(handler=lambda body: "ok").start()
srv.requests = type("NoLog", (list,), {"append": lambda self, x: None})()  # keep the server flat too
print(srv.base_url, flush=True)
time.sleep(1e9)
"""


def _peak_rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_one(n: int, base_url: str) -> dict:
    """In this (fresh) process: write n instructions, run the probe stage, report peak RSS."""
    import psutil

    from benchmarks.orchestration import make_config, write_instructions
    from ray_jobs.pipeline import run_records
    from ray_jobs.runtime import ray_session
    from toolweave.stages import probe

    run_dir = tempfile.mkdtemp(prefix=f"tw-bench-mem-{n}-")
    write_instructions(run_dir, n, calls=1)
    cfg = make_config(run_dir, base_url, 256, batch_size=64)
    actor_peak = {}
    stop = threading.Event()

    def watch():  # an actor's VmHWM, read while it is alive
        while not stop.is_set():
            for p in psutil.Process().children(recursive=True):
                try:
                    if "MapWorker" in " ".join(p.cmdline()):
                        actor_peak[p.pid] = max(actor_peak.get(p.pid, 0.0), _peak_rss_mb(p.pid))
                except (psutil.Error, OSError):
                    pass
            time.sleep(0.5)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t0 = time.monotonic()
    with ray_session(cfg):
        summary = run_records(cfg, probe.STAGE)
        time.sleep(1.0)
    stop.set()
    t.join()
    return {"episodes": n, "processed": summary["processed"], "failed": summary["failed"],
            "driver_peak_rss_mb": round(_peak_rss_mb(), 1),
            "actor_peak_rss_mb": round(max(actor_peak.values(), default=float("nan")), 1),
            "wall_s": round(time.monotonic() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.url)), flush=True)
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = server.stdout.readline().strip()
        results = []
        for n in (args.small, args.large):
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--url", url], env=env,
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))[7:]))
    finally:
        server.kill()
        server.wait()
    small, large = results
    print(json.dumps({
        "small": small, "large": large,
        "driver_ratio": round(large["driver_peak_rss_mb"] / small["driver_peak_rss_mb"], 3),
        "actor_ratio": round(large["actor_peak_rss_mb"] / small["actor_peak_rss_mb"], 3),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
