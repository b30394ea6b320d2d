"""Embedded engine (vLLM CPU, OpenAI server) vs plain transformers `generate`, same model (SmolLM2).

Useful generated tokens per second at 1, 8 and 32 concurrent requests, printed as a table of ratios
from one run. Every request generates exactly its number of tokens (vLLM: `max_tokens` + `ignore_eos`;
transformers: `min_new_tokens`).

- default: equal-length "story" prompts, `--max-tokens` each, as many requests as the concurrency;
- `--traffic FILE.jsonl[.gz]`: requests recorded from a real DFSDT solve (`benchmarks/traffic.py`,
  e.g. benchmarks/data/dfsdt_g1_shared_tools.jsonl.gz): their messages and tools, each generating
  its recorded completion tokens; `--requests` of them spread evenly over the recording, the same
  ones at every concurrency, at most that many in flight.

transformers gets the same requests in consecutive batches of the concurrency, left-padded (its fair
best): a batch generates to its longest request and only each request's own tokens count.
`--engine-config JSON` overrides `EmbeddedEngineConfig` fields for this run (e.g.
'{"extra_engine_kwargs": {"max_num_seqs": 32}}' or '{"omp_threads_bind": "all"}'); `--no-transformers`
times the engine alone.

    .venv/bin/python benchmarks/engine_throughput.py [--traffic FILE --requests 32] [--max-tokens 64]
        [--concurrency 1 8 32] [--engine-config JSON] [--no-transformers] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.traffic import RecordedRequest, ReplayResult, batches, read_traffic, replay, spread  # noqa: E402
from toolweave.chat_template import serving_chat_template  # noqa: E402


def story_requests(n: int, max_tokens: int) -> list[RecordedRequest]:
    return [RecordedRequest(messages=[{"role": "user", "content": f"Write a short story about robot number {i} "
                                                                  "who learns to cook."}],
                            tools=None, tool_choice=None, max_tokens=max_tokens, prompt_tokens=0,
                            completion_tokens=max_tokens)
            for i in range(n)]


def best_torch_threads(model, tok) -> int:
    """1 thread or all cores, whichever runs a forward pass faster: on a shared machine OpenMP
    threads spin-waiting for a descheduled sibling made 2 threads ~30x slower than 1 (seen)."""
    import torch

    ids = tok("Hello, tell me a story about a robot", return_tensors="pt")
    timings = {}
    for n in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(n)
        with torch.inference_mode():
            model(**ids)
            t0 = time.perf_counter()
            for _ in range(3):
                model(**ids)
        timings[n] = time.perf_counter() - t0
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return best


def template_messages(messages: list[dict]) -> list[dict]:
    """A tool-calling turn's `content: null` as "", as vLLM renders it (a template may concatenate it)."""
    return [{**m, "content": m.get("content") or ""} for m in messages]


def hf_replay(model_dir: str, requests: list[RecordedRequest], batch_size: int, cache: dict) -> ReplayResult:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if "model" not in cache:
        cache["tok"] = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        cache["model"] = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        cache["threads"] = best_torch_threads(cache["model"], cache["tok"])
    tok, model = cache["tok"], cache["model"]
    template = serving_chat_template("auto", model_dir)  # what the embedded engine renders with
    useful = 0
    t0 = time.perf_counter()
    for batch in batches(requests, batch_size):
        texts = [tok.apply_chat_template(template_messages(r.messages), tools=r.tools, tokenize=False,
                                         add_generation_prompt=True, chat_template=template) for r in batch]
        inputs = tok(texts, return_tensors="pt", padding=True)
        longest = max(max(1, r.completion_tokens) for r in batch)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=longest, min_new_tokens=longest, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        assert out.shape[1] - inputs["input_ids"].shape[1] == longest
        useful += sum(max(1, r.completion_tokens) for r in batch)  # padding rows' extra tokens are waste
    return ReplayResult(batch_size, len(requests), useful, useful, time.perf_counter() - t0)


def reset_prefix_cache(base_url: str) -> None:
    """Empty vLLM's prefix cache (a dev-mode route), so a concurrency level never reuses the prompts
    of the level before it; within a level, requests sharing a prefix still hit, as in the solve."""
    import urllib.request

    url = base_url.rstrip("/").removesuffix("/v1") + "/reset_prefix_cache"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60) as r:
        assert r.status == 200, f"{url}: HTTP {r.status}"


def workload(args, concurrency: int) -> list[RecordedRequest]:
    if args.traffic:
        return spread(args.recorded, args.requests)
    return story_requests(concurrency, args.max_tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traffic", help="replay this recording (benchmarks/traffic.py) instead of story prompts")
    ap.add_argument("--requests", type=int, default=32, help="with --traffic: N recorded requests, spread evenly")
    ap.add_argument("--max-tokens", type=int, default=64, help="story prompts: tokens a request")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--engine-config", default="{}", help="JSON: EmbeddedEngineConfig fields for this run")
    ap.add_argument("--no-transformers", action="store_true", help="time the engine only (settings sweeps)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.traffic:
        args.source, args.recorded = read_traffic(args.traffic)

    from toolweave.config import EmbeddedEngineConfig
    from toolweave.llm.engine import EmbeddedEngine, engine_env, smollm2_hf_dir

    cfg = EmbeddedEngineConfig.model_validate(json.loads(args.engine_config))
    threads_bind = engine_env(cfg).get("VLLM_CPU_OMP_THREADS_BIND", os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"))
    model_dir = str(smollm2_hf_dir(cfg.cache_dir))
    results: dict[str, dict[int, ReplayResult]] = {"vllm": {}, "transformers": {}}

    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # the engine inherits it: /reset_prefix_cache (127.0.0.1 only)
    t0 = time.perf_counter()
    with EmbeddedEngine(cfg) as engine:
        startup = time.perf_counter() - t0
        asyncio.run(replay(engine.base_url, cfg.served_name, story_requests(2, 8), 2))  # warm-up
        for c in args.concurrency:
            reset_prefix_cache(engine.base_url)
            results["vllm"][c] = asyncio.run(replay(engine.base_url, cfg.served_name, workload(args, c), c))
    cache: dict = {"threads": None}
    if not args.no_transformers:
        hf_replay(model_dir, story_requests(1, 4), 1, cache)  # warm-up
        for c in args.concurrency:
            results["transformers"][c] = hf_replay(model_dir, workload(args, c), c, cache)

    if args.traffic:
        reqs = spread(args.recorded, args.requests)
        prompt, out = [r.prompt_tokens for r in reqs], [r.completion_tokens for r in reqs]
        print(f"{args.traffic}: {len(reqs)} recorded requests at every concurrency; prompt tokens "
              f"{min(prompt)}-{max(prompt)} (mean {statistics.mean(prompt):.0f}), generated {min(out)}-{max(out)} "
              f"(mean {statistics.mean(out):.0f})")
    else:
        print(f"story prompts, {args.max_tokens} generated tokens a request, as many requests as the concurrency")
    print(f"SmolLM2-135M {cfg.dtype}; engine ready in {startup:.0f}s; engine settings "
          f"{cfg.model_dump(include={'kv_cache_gb', 'extra_engine_kwargs'})}, "
          f"VLLM_CPU_OMP_THREADS_BIND={threads_bind}; "
          f"transformers on {cache['threads']} torch thread(s); load {os.getloadavg()[0]:.1f}")
    print(f"{'concurrent':>10} {'vLLM tok/s':>11} {'HF tok/s':>9} {'vLLM / HF':>10}")
    for c in args.concurrency:
        v = results["vllm"][c]
        h = results["transformers"].get(c)
        if v.useful_tokens != v.expected_tokens:
            print(f"  (concurrency {c}: the engine generated {v.useful_tokens} tokens, {v.expected_tokens} asked)")
        hf = f"{h.tokens_per_s:>9.1f} {v.tokens_per_s / h.tokens_per_s:>9.2f}x" if h else f"{'-':>9} {'-':>10}"
        print(f"{c:>10} {v.tokens_per_s:>11.1f} {hf}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"traffic": args.traffic, "requests": args.requests if args.traffic else None,
                       "max_tokens": None if args.traffic else args.max_tokens,
                       "engine_config": json.loads(args.engine_config), "engine_startup_s": startup,
                       "omp_threads_bind": threads_bind,
                       "torch_threads": cache["threads"], "load_1m": os.getloadavg()[0],
                       **{side: {c: {**vars(r), "tokens_per_s": r.tokens_per_s} for c, r in per.items()}
                          for side, per in results.items()}}, f, indent=2)


if __name__ == "__main__":  # vLLM spawns processes
    main()
