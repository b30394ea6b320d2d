"""Orchestration efficiency: C concurrent episodes of k LLM calls each against a scripted server
with L seconds latency a call. With C episodes in flight, perfect orchestration finishes C
episodes every k*L seconds, so the limit is C/(k*L) episodes/s; we print achieved / limit
(target >= 0.95) and the client-side CPU time per LLM call (target <= 1 ms), measured inside the
Ray actors that make the calls.

    python benchmarks/orchestration.py [--concurrency 1000] [--calls 4] [--latency 1.0] [--waves 10] [--actors 2]
    python benchmarks/orchestration.py --nodes 4 --concurrency 4000   # across 4 nodes of a local cluster

`--nodes N` runs on a local multi-node cluster (`ray.cluster_utils.Cluster`: real raylets on this
machine, the head with no work resource, N `simulate` nodes), one episode actor per node
(`ray.actor_resources: {simulate: 1}`); the nodes the actors ran on are read from Ray's state API.

Two runs, each printed:
- `sustained`: waves*C episodes with C in flight (the pipeline refills a slot as an episode ends):
  the throughput a long generation job gets, the figure the target is about; its `steady` part
  counts only the replies between the first k*L seconds (ramp-up) and the last k*L (drain), which a
  job of many more waves (ToolBench's ~126,000 instances) sustains;
- `one_wave`: exactly C episodes that all start at once: every fixed cost (opening C connections,
  the first burst of C requests on 2 cores) lands inside k*L seconds, so this ratio is lower.

The pipeline is the real one (Ray Data, actor pool, LLMClient, exactly-once commits); the probe
worker makes `k` chat calls per instruction. The scripted server runs in its own process (in a
real deployment it is another machine); its reply times give the window, from the first request
it sees to the last reply, so Ray's start-up and actor start are not counted.
"""
from __future__ import annotations

import argparse
import contextlib
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

from toolweave import io  # noqa: E402
from toolweave.config import RunConfig  # noqa: E402
from toolweave.schemas import Instruction  # noqa: E402
from toolweave.stages import probe  # noqa: E402
from toolweave.stages.probe import CALLS_PER_EPISODE  # noqa: E402

# The server process: prints its URL, then on each line of stdin (a file path) writes there the
# reply times (CLOCK_MONOTONIC, shared by every process) since the previous line, one per line, and
# answers with the most requests it held at once.
SERVER = """
import sys, time
from toolweave.testing.scripted_server import ScriptedServer
stamps = []
def handler(body):
    stamps.append(time.monotonic())
    return "ok"
srv = ScriptedServer(handler=handler, latency_s=float(sys.argv[1])).start()
srv.requests = type("NoLog", (list,), {"append": lambda self, x: None})()  # nothing grows
srv.headers = srv.requests
print(srv.base_url, flush=True)
for line in sys.stdin:
    got, stamps[:] = list(stamps), []
    with open(line.strip(), "w") as f:
        f.write("\\n".join(map(repr, got)))
    print(srv.max_in_flight, flush=True)
    srv.max_in_flight = 0
"""


def make_config(run_dir: str, base_url: str, in_flight: int, batch_size: int, actors: int = 1,
                on_nodes: bool = False) -> RunConfig:
    return RunConfig(run_dir=run_dir, llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": base_url, "model": "scripted", "is_vllm": False, "max_concurrency": in_flight * 2,
        "timeout_s": 120}}},
        ray={"num_cpus": 8, "object_store_memory": 200_000_000, "actor_num_cpus": 0.5,
             "actor_resources": {"simulate": 1} if on_nodes else {},
             "min_actors": actors, "max_actors": actors},
        run={"batch_size": batch_size, "max_in_flight": in_flight, "show_progress": False})


def write_instructions(run_dir: str, n: int, calls: int) -> None:
    rows = (Instruction(id=f"bench-{i:07d}", text=f"benchmark request {i}", extra={CALLS_PER_EPISODE: calls})
            for i in range(n))
    io.write_part(rows, Path(run_dir) / "instructions", Instruction, name="bench")


class ServerProcess:
    def __init__(self, latency: float):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.base_url = self.proc.stdout.readline().strip()

    def take(self) -> tuple[list[float], int]:
        """(reply times, most requests held at once) since last asked."""
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
            self.proc.stdin.write(f.name + "\n")
            self.proc.stdin.flush()
            peak = int(self.proc.stdout.readline())
            return [float(x) for x in f.read().split()], peak

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def measure(server: ServerProcess, episodes: int, args) -> dict:
    from ray_jobs.pipeline import run_records
    run_dir = tempfile.mkdtemp(prefix="tw-bench-orch-")
    write_instructions(run_dir, episodes, args.calls)
    per_actor = args.concurrency // args.actors
    cfg = make_config(run_dir, server.base_url, per_actor, args.batch_size, args.actors, on_nodes=args.nodes > 0)
    server.take()  # reset
    with _CpuSampler() as cpu_log:
        summary = run_records(cfg, probe.STAGE)
    stamps, peak = server.take()
    # the window of LLM work: first request in (first reply - L) .. last reply out
    start, last = min(stamps) - args.latency, max(stamps)
    window = last - start
    cpu = cpu_log.used_since(start)  # the actors' start-up (imports, setup) is not counted
    limit = args.concurrency / (args.calls * args.latency)
    achieved = summary["processed"] / window
    calls = summary["llm_calls"]
    return {
        "episodes": episodes, "llm_calls": calls, "failed": summary["failed"],
        "actor_nodes": _actor_nodes() if args.nodes else None,
        "peak_requests_in_flight": peak, "window_s": round(window, 3),
        "achieved_episodes_per_s": round(achieved, 2), "ratio": round(achieved / limit, 4),
        "steady": steady_ratio(stamps, start, last, args),
        "actor_cpu_s": round(cpu, 3), "cpu_ms_per_call": round(cpu / calls * 1000, 4) if calls else None,
    }


def steady_ratio(stamps: list[float], start: float, last: float, args) -> dict | None:
    """Calls/s against the limit C/L between the end of the first episode time (k*L after the
    first request: every slot has been filled once) and the start of the drain (k*L before the last
    reply: from there the input is used up and slots empty). What a job of many more waves sustains,
    without its one ramp-up and one drain; None where the run is too short to have such a middle."""
    lo, hi = start + args.calls * args.latency, last - args.calls * args.latency
    if hi - lo < args.calls * args.latency:
        return None
    calls = sum(lo < t <= hi for t in stamps)
    ratio = calls / (hi - lo) / (args.concurrency / args.latency)
    return {"window_s": round(hi - lo, 3), "llm_calls": calls, "ratio": round(ratio, 4)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=1000, help="C: episodes in flight")
    ap.add_argument("--calls", type=int, default=4, help="k: LLM calls per episode")
    ap.add_argument("--latency", type=float, default=1.0, help="L: seconds per call at the server")
    ap.add_argument("--waves", type=int, default=10, help="sustained run: waves*C episodes")
    ap.add_argument("--actors", type=int, default=2, help="the pool splits C between them (2 cores: 2)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--nodes", type=int, default=0, help="N > 0: a local N-node cluster, one actor per node")
    args = ap.parse_args()
    if args.nodes:
        args.actors = args.nodes

    server = ServerProcess(args.latency)
    try:
        cfg = make_config(tempfile.mkdtemp(), server.base_url, args.concurrency, args.batch_size, args.actors)
        with _ray(cfg, args.nodes):
            one_wave = measure(server, args.concurrency, args)
            sustained = measure(server, args.waves * args.concurrency, args)
    finally:
        server.close()
    print(json.dumps({
        "concurrency": args.concurrency, "calls_per_episode": args.calls, "latency_s": args.latency,
        "actors": args.actors, "nodes": args.nodes, "limit_episodes_per_s": round(args.concurrency / (args.calls * args.latency), 2),
        "sustained": sustained, "one_wave": one_wave,
        "ratio": sustained["ratio"], "cpu_ms_per_call": sustained["cpu_ms_per_call"],
        # what the clients alone need at the limit (C/L calls/s), against the cores this machine has
        # (the scripted server and Ray share them): over the cores, the limit cannot be reached here
        "client_cores_at_limit": round((sustained["cpu_ms_per_call"] or 0) * args.concurrency / args.latency / 1000, 2),
        "cores": os.cpu_count(),
    }, indent=2))
    return 0


@contextlib.contextmanager
def _ray(cfg: RunConfig, nodes: int):
    """A local Ray instance, or (nodes > 0) a local cluster: a head with one CPU and no `simulate`
    resource, plus `nodes` raylets with 2 logical CPUs and `simulate: 1` each."""
    from ray_jobs.runtime import ray_session
    if not nodes:
        with ray_session(cfg):
            yield
        return
    import ray
    from ray.cluster_utils import Cluster

    from toolweave.llm.engine import free_port
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2**20,
                                                            "include_dashboard": True, "dashboard_port": free_port()})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=2, resources={"simulate": 1}, object_store_memory=80 * 2**20)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}},
                 log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()


def _actor_nodes() -> int | None:
    """How many nodes the episode actors ran on (Ray's state API), where a dashboard runs."""
    try:
        from ray.util.state import list_actors
        return len({a.node_id for a in list_actors(limit=10_000, detail=True) if "MapWorker" in (a.class_name or "")})
    except Exception as e:  # noqa: BLE001 -- the local single-node session runs no dashboard
        print(f"actor nodes unknown: {e}", file=sys.stderr)
        return None


class _CpuSampler(threading.Thread):
    """Samples the CPU time (user+sys) of the pipeline's map actors, which run the LLM client:
    the worker processes of this driver's local instance titled *MapWorker*."""

    def __init__(self, every_s: float = 0.05):
        super().__init__(daemon=True)
        self.every_s, self.samples = every_s, []  # (time, {pid: cpu seconds})
        self._done = threading.Event()

    def run(self) -> None:
        import psutil
        while not self._done.is_set():
            now: dict[int, float] = {}
            for p in psutil.Process().children(recursive=True):
                try:
                    if "MapWorker" in " ".join(p.cmdline()):
                        t = p.cpu_times()
                        now[p.pid] = t.user + t.system
                except psutil.Error:
                    continue
            self.samples.append((time.monotonic(), now))
            self._done.wait(self.every_s)

    def __enter__(self) -> "_CpuSampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()

    def used_since(self, t: float) -> float:
        """CPU the actors used from time t (the last sample before it) to the last sample."""
        before = [s for ts, s in self.samples if ts <= t]
        base = before[-1] if before else {}
        end = self.samples[-1][1]
        return sum(v - base.get(pid, 0.0) for pid, v in end.items())


if __name__ == "__main__":
    sys.exit(main())
