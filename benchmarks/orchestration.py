"""Orchestration efficiency: C concurrent episodes of k LLM calls each against a scripted server
with L seconds latency a call. Perfect orchestration finishes C episodes in k*L seconds, so the
limit is C/(k*L) episodes/s; we print achieved / limit (target >= 0.95) and the client-side CPU
time per LLM call (target <= 1 ms), measured inside the Ray actor that makes the calls.

    python benchmarks/orchestration.py [--episodes 1000] [--calls 4] [--latency 1.0]

The pipeline is the real one (Ray Data, actor pool, LLMClient, exactly-once commits); the probe
worker makes `k` chat calls per instruction. Timed from the first to the last call the server
sees, so Ray's start-up and actor start are not counted as orchestration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from toolweave import io  # noqa: E402
from toolweave.config import RunConfig  # noqa: E402
from toolweave.schemas import Instruction  # noqa: E402
from toolweave.stages.probe import CALLS_PER_EPISODE, probe_plan  # noqa: E402
from toolweave.testing.scripted_server import ScriptedServer  # noqa: E402


def make_config(run_dir: str, base_url: str, episodes: int, batch_size: int) -> RunConfig:
    return RunConfig(run_dir=run_dir, llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": base_url, "model": "scripted", "is_vllm": False, "max_concurrency": episodes * 2,
        "timeout_s": 120}}},
        ray={"num_cpus": 8, "object_store_memory": 200_000_000, "actor_num_cpus": 0.5,
             "min_actors": 1, "max_actors": 1, "batch_size": batch_size, "max_in_flight": episodes,
             "show_progress": False})


def write_instructions(run_dir: str, n: int, calls: int) -> None:
    rows = (Instruction(id=f"bench-{i:07d}", text=f"benchmark request {i}", extra={CALLS_PER_EPISODE: calls})
            for i in range(n))
    io.write_part(rows, Path(run_dir) / "instructions", Instruction, name="bench")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=250)
    args = ap.parse_args()

    from ray_jobs.pipeline import run_record_stage
    from ray_jobs.runtime import ray_session

    stamps: list[float] = []

    def handler(body):
        stamps.append(time.monotonic())
        return "ok"

    run_dir = tempfile.mkdtemp(prefix="tw-bench-orch-")
    write_instructions(run_dir, args.episodes, args.calls)
    with ScriptedServer(handler=handler, latency_s=args.latency) as srv:
        cfg = make_config(run_dir, srv.base_url, args.episodes, args.batch_size)
        with ray_session(cfg):
            baseline = _Baseline(stamps)  # actor CPU when the first call arrives (start-up excluded)
            baseline.start()
            summary = run_record_stage(cfg, "probe", plan=probe_plan(cfg))
            end = _actor_cpu_seconds()
            baseline.join()
        peak = srv.max_in_flight
    cpu = None if end is None or baseline.cpu is None else end - baseline.cpu
    calls = summary["llm_calls"]
    # the window of LLM work: first request in .. last reply out
    window = (max(stamps) + args.latency) - min(stamps)
    limit = args.episodes / (args.calls * args.latency)
    achieved = summary["processed"] / window
    result = {
        "episodes": args.episodes, "calls_per_episode": args.calls, "latency_s": args.latency,
        "llm_calls": calls, "failed": summary["failed"], "peak_requests_in_flight": peak,
        "window_s": round(window, 3), "limit_episodes_per_s": round(limit, 2),
        "achieved_episodes_per_s": round(achieved, 2), "ratio": round(achieved / limit, 4),
        "actor_cpu_s": round(cpu, 3) if cpu is not None else None,
        "cpu_ms_per_call": round(cpu / calls * 1000, 4) if cpu is not None and calls else None,
        "wall_s_incl_startup": summary["elapsed_s"],
    }
    print(json.dumps(result, indent=2))
    return 0


class _Baseline(threading.Thread):
    def __init__(self, stamps: list[float]):
        super().__init__(daemon=True)
        self.stamps, self.cpu = stamps, None

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stamps and time.monotonic() < deadline:
            time.sleep(0.01)
        self.cpu = _actor_cpu_seconds()


def _actor_cpu_seconds() -> float | None:
    """CPU time (user+sys) of the pipeline's map actors, which run the LLM client: the worker
    processes of the local instance this driver started (its descendants) titled *MapWorker*."""
    import psutil
    total, found = 0.0, False
    for p in psutil.Process().children(recursive=True):
        try:
            if "MapWorker" not in " ".join(p.cmdline()):
                continue
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
        found = True
    return total if found else None


if __name__ == "__main__":
    sys.exit(main())
