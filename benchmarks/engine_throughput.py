"""Embedded engine (vLLM CPU, OpenAI server) vs plain transformers `generate`, same model (SmolLM2).

Generated tokens per second at 1, 8 and 32 concurrent requests; every request generates exactly
--max-tokens tokens (vLLM: ignore_eos; transformers: min_new_tokens), and transformers gets the
same requests as one left-padded batch (its fair best). Printed as a table of ratios from one run.

    .venv/bin/python benchmarks/engine_throughput.py [--max-tokens 64] [--concurrency 1 8 32] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write a short story about robot number {i} who learns to cook."}]
            for i in range(n)]


async def vllm_tokens_per_s(base_url: str, model: str, concurrency: int, max_tokens: int) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=900)

    async def one(messages):
        r = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                 temperature=0.0, extra_body={"ignore_eos": True})
        return r.usage.completion_tokens

    t0 = time.perf_counter()
    tokens = sum(await asyncio.gather(*[one(m) for m in prompts(concurrency)]))
    elapsed = time.perf_counter() - t0
    await client.close()
    return tokens / elapsed


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


def hf_tokens_per_s(model_dir: str, concurrency: int, max_tokens: int, cache: dict) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if "model" not in cache:
        cache["tok"] = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        cache["model"] = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        cache["threads"] = best_torch_threads(cache["model"], cache["tok"])
    tok, model = cache["tok"], cache["model"]
    texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts(concurrency)]
    batch = tok(texts, return_tensors="pt", padding=True)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
    elapsed = time.perf_counter() - t0
    generated = (out.shape[1] - batch["input_ids"].shape[1]) * concurrency
    return generated / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from toolweave.config import EmbeddedEngineConfig
    from toolweave.llm.engine import EmbeddedEngine, smollm2_hf_dir

    cfg = EmbeddedEngineConfig()
    model_dir = str(smollm2_hf_dir(cfg.cache_dir))
    results: dict[str, dict[int, float]] = {"vllm": {}, "transformers": {}}

    t0 = time.perf_counter()
    with EmbeddedEngine(cfg) as engine:
        startup = time.perf_counter() - t0
        asyncio.run(vllm_tokens_per_s(engine.base_url, cfg.served_name, 2, 8))  # warm-up
        for c in args.concurrency:
            results["vllm"][c] = asyncio.run(vllm_tokens_per_s(engine.base_url, cfg.served_name, c,
                                                               args.max_tokens))
    cache: dict = {}
    hf_tokens_per_s(model_dir, 1, 4, cache)  # warm-up
    for c in args.concurrency:
        results["transformers"][c] = hf_tokens_per_s(model_dir, c, args.max_tokens, cache)

    print(f"SmolLM2-135M fp32, {args.max_tokens} generated tokens a request; engine ready in {startup:.0f}s; "
          f"transformers on {cache['threads']} torch thread(s)")
    print(f"{'concurrent':>10} {'vLLM tok/s':>11} {'HF tok/s':>9} {'vLLM / HF':>10}")
    for c in args.concurrency:
        v, h = results["vllm"][c], results["transformers"][c]
        print(f"{c:>10} {v:>11.1f} {h:>9.1f} {v / h:>9.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"max_tokens": args.max_tokens, "engine_startup_s": startup,
                       "torch_threads": cache["threads"], **results}, f, indent=2)


if __name__ == "__main__":  # vLLM spawns processes
    main()
