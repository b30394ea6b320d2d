"""Packing benchmark: efficiency on generated episodes, and trained tokens/s packed vs padded.

    python benchmarks/packing.py [--episodes 400] [--max-len 2048] [--steps 6]

Episodes are generated (varied numbers of tool calls and observation sizes), rendered with the SFT chat
template and tokenized exactly as `sft_data` does. Efficiency = real tokens ÷ tokens computed (packed rows
and one-example padded rows both computed at max_len, static shapes as ToolBench pads to model_max_length).
Throughput: a tiny Llama trains a few steps of max_len-token rows, packed and padded; real (non-padding)
tokens/s of both are reported from the one run, with their ratio.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import torch

from toolweave.config import SFTConfig, TrainConfig
from toolweave.schemas import Episode
from training.model import build_model
from training.packing import collate, efficiency, pack, to_record
from training.sft_data import episode_example, sft_tokenizer

WORDS = "the city weather forecast price stock rate user order search result list item value date time".split()


def generated_episode(i: int, rng: random.Random) -> Episode:
    def text(n):
        return " ".join(rng.choice(WORDS) for _ in range(n))
    tools = [{"type": "function", "function": {"name": f"api_{k}", "description": text(12),
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}} for k in range(rng.randint(1, 4))]
    msgs = [{"role": "system", "content": "You are a tool-using assistant."}, {"role": "user", "content": text(rng.randint(10, 40))}]
    for c in range(rng.randint(1, 5)):
        msgs.append({"role": "assistant", "content": text(rng.randint(5, 30)), "tool_calls": [
            {"id": f"c{c}", "type": "function", "function": {"name": "api_0", "arguments": json.dumps({"q": text(3)})}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{c}", "content": text(rng.randint(10, 250))})
    msgs.append({"role": "assistant", "content": text(rng.randint(10, 80))})
    return Episode(id=f"gen-{i}", instruction_id=f"i{i}", method="generated", status="answered",
                   messages=msgs, tools=tools)


def interleaved_tokens_per_s(model, runs: dict[str, list[dict]], pad_id: int, steps: int, pad_to: int) -> dict:
    """Real tokens/s of each row set, timing their steps alternately so machine load hits both alike."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    real = {k: 0 for k in runs}
    secs = {k: 0.0 for k in runs}
    for s in range(steps + 1):  # step 0 warms up
        for name, rows in runs.items():
            row = rows[s % len(rows)]
            b = collate([row], pad_id, pad_to)
            t = time.perf_counter()
            model(**b, use_cache=False).loss.backward()
            opt.step()
            opt.zero_grad()
            if s:
                secs[name] += time.perf_counter() - t
                real[name] += len(row["input_ids"])
    return {k: real[k] / secs[k] for k in runs}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--max-len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    rng = random.Random(0)
    sft = SFTConfig(max_len=args.max_len, truncate=True)
    tok = sft_tokenizer(sft)
    examples = [episode_example(generated_episode(i, rng), tok, sft) for i in range(args.episodes)]
    packed = [to_record(r, "chat_template").model_dump() for r in pack(examples, args.max_len)]
    padded = [to_record([e], "chat_template").model_dump() for e in examples]
    # both computed at max_len tokens a step (static shapes, as ToolBench pads to model_max_length)
    eff_packed = efficiency([len(r["input_ids"]) for r in packed], args.max_len)
    eff_padded = efficiency([len(r["input_ids"]) for r in padded], args.max_len)
    torch.manual_seed(0)
    model = build_model(TrainConfig(max_len=args.max_len), len(tok))
    rng.shuffle(padded)  # padded rows in arrival order, not sorted by length
    tps = interleaved_tokens_per_s(model, {"packed": packed, "padded": padded}, tok.pad_token_id, args.steps,
                                   args.max_len)
    tps_packed, tps_padded = tps["packed"], tps["padded"]
    report = {"episodes": args.episodes, "max_len": args.max_len, "examples_tokens": sum(len(e) for e in examples),
              "packed_rows": len(packed), "packing_efficiency": round(eff_packed, 4),
              "padded_efficiency": round(eff_padded, 4),
              "tokens_per_s_packed": round(tps_packed, 1), "tokens_per_s_padded": round(tps_padded, 1),
              "speedup_packed_over_padded": round(tps_packed / tps_padded, 2)}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
