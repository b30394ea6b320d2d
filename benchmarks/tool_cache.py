"""Lookups/s of the shared tool-response cache actor: the one actor every episode of a stage run
asks before simulating a tool call (thousands of episodes share it).

    python benchmarks/tool_cache.py [--clients 2] [--concurrency 256] [--lookups 20000] [--keys 5000]
                                    [--miss-rate 0.1]

Client actors (like the pipeline's episode actors) each keep `concurrency` lookups in flight
through `ActorResponseCache`; a miss is followed by a put, as the LLM-simulated executor does.
The cache is pre-filled with `keys` responses of ~1 KB. Prints JSON: lookups/s over the whole
window, the hit rate the actor counted, and the time to persist the new entries to the run dir.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402

BODY = json.dumps({"status_code": 200, "response": "x" * 1000})


@ray.remote(num_cpus=0.25)
class Client:
    """One episode actor's worth of lookups: `concurrency` at a time until `lookups` are done."""

    def __init__(self, actor_name: str):
        from actors.tool_cache import ActorResponseCache
        self.cache = ActorResponseCache.named(actor_name)

    async def run(self, lookups: int, concurrency: int, keys: int, miss_rate: float, seed: int) -> dict:
        rng = random.Random(seed)
        todo = [f"miss-{seed}-{i}" if rng.random() < miss_rate else f"key-{rng.randrange(keys)}"
                for i in range(lookups)]
        misses = 0

        async def worker(mine: list[str]):
            nonlocal misses
            for key in mine:
                if await self.cache.get(key) is None:
                    misses += 1
                    await self.cache.put(key, BODY)

        await asyncio.gather(*(worker(todo[i::concurrency]) for i in range(concurrency)))
        return {"lookups": lookups, "misses": misses}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--lookups", type=int, default=20000, help="in all, split over the clients")
    ap.add_argument("--keys", type=int, default=5000)
    ap.add_argument("--miss-rate", type=float, default=0.1)
    args = ap.parse_args()

    from actors.tool_cache import ActorResponseCache, cache_actor_name, start_tool_cache, stop_tool_cache

    ray.init(address="local", num_cpus=4, object_store_memory=100_000_000, include_dashboard=False,
             logging_level="WARNING")
    run_dir = tempfile.mkdtemp(prefix="tw-bench-cache-")
    path = Path(run_dir) / "tool_cache"
    try:
        handle = start_tool_cache(path, "bench", persist_every_s=0)  # the persist is measured apart
        fill = ActorResponseCache.named(cache_actor_name(path, "bench"))

        async def prefill():
            await asyncio.gather(*(fill.put(f"key-{i}", BODY) for i in range(args.keys)))

        asyncio.run(prefill())
        clients = [Client.remote(cache_actor_name(path, "bench")) for _ in range(args.clients)]
        per = args.lookups // args.clients
        before = ray.get(handle.stats.remote())
        t0 = time.perf_counter()
        results = ray.get([c.run.remote(per, args.concurrency, args.keys, args.miss_rate, seed)
                           for seed, c in enumerate(clients)])
        window = time.perf_counter() - t0
        after = ray.get(handle.stats.remote())
        persisted = stop_tool_cache(handle)
    finally:
        ray.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)
    lookups = sum(r["lookups"] for r in results)
    hits = after["hits"] - before["hits"]
    print(json.dumps({
        "clients": args.clients, "concurrency_per_client": args.concurrency, "lookups": lookups,
        "window_s": round(window, 3), "lookups_per_s": round(lookups / window, 1),
        "hit_rate": round(hits / max(1, after["hits"] + after["misses"] - before["hits"] - before["misses"]), 4),
        "puts_after_misses": sum(r["misses"] for r in results),
        "persist": persisted, "cpu_count": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
