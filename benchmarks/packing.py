"""Packing benchmark: efficiency on generated episodes, and trained tokens/s packed vs padded.

    python benchmarks/packing.py [--episodes 400] [--max-len 2048] [--steps 6]

Episodes are generated (varied numbers of tool calls and observation sizes), rendered with the SFT chat
template and tokenized exactly as `sft_data` does. Efficiency = real tokens ÷ tokens computed (packed rows
computed at max_len; padded batches at their longest example). Throughput: a tiny Llama trains the same
number of real tokens from packed rows and from padded one-example rows (same micro batch token budget);
both are reported from the one run, with their ratio.
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


def tokens_per_s(model, rows: list[dict], micro: int, pad_id: int, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    real, t = 0, None
    for s in range(steps + 1):  # step 0 warms up
        batch_rows = [rows[(s * micro + k) % len(rows)] for k in range(micro)]
        b = collate(batch_rows, pad_id)
        if s == 1:
            t = time.perf_counter()
        loss = model(**b, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if s >= 1:
            real += sum(len(r["input_ids"]) for r in batch_rows)
    return real / (time.perf_counter() - t)


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
    micro_padded = max(1, args.max_len // max(len(e) for e in examples))  # same token budget per step
    eff_packed = efficiency([len(r["input_ids"]) for r in packed], args.max_len)
    eff_padded = sum(len(e) for e in examples) / sum(
        micro_padded * max(len(padded[k]["input_ids"]) for k in range(i, min(i + micro_padded, len(padded))))
        for i in range(0, len(padded), micro_padded))
    torch.manual_seed(0)
    model = build_model(TrainConfig(max_len=args.max_len), len(tok))
    tps_packed = tokens_per_s(model, packed, 1, tok.pad_token_id, args.steps)
    tps_padded = tokens_per_s(model, padded, micro_padded, tok.pad_token_id, args.steps)
    report = {"episodes": args.episodes, "max_len": args.max_len, "examples_tokens": sum(len(e) for e in examples),
              "packed_rows": len(packed), "packing_efficiency": round(eff_packed, 4),
              "padded_efficiency": round(eff_padded, 4), "padded_micro_batch": micro_padded,
              "tokens_per_s_packed": round(tps_packed, 1), "tokens_per_s_padded": round(tps_padded, 1),
              "speedup_packed_over_padded": round(tps_packed / tps_padded, 2)}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
