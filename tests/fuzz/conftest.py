"""The fuzz/fault suite: seeded (reproducible) mutations of real inputs from tests/data; every test
prints how many cases it ran (`pytest -s tests/fuzz`) and asserts 0 crashes and 0 leaks."""
import json
import random
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"


def report(name: str, **counts) -> None:
    print(f"\nfuzz {name}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()), flush=True)


@pytest.fixture(scope="session")
def real_replies() -> list[str]:
    return load_real_replies()


def load_real_replies() -> list[str]:
    """Real assistant outputs: ToolBench/StableToolBench answer files (function calls, contents) and
    ToolAlpaca golden actions, as ReAct text and as bare argument strings."""
    out: list[str] = []
    for f in sorted(DATA.rglob("*_ChatGPT_DFS_woFilter_w2.json")):
        doc = json.loads(f.read_text())
        for chain in (doc.get("answer_generation") or {}).get("train_messages") or []:
            for m in chain:
                if m.get("role") != "assistant":
                    continue
                call = m.get("function_call") or {}
                if call:
                    out.append(f"Thought: {m.get('content') or ''}\nAction: {call['name']}\n"
                               f"Action Input: {call.get('arguments', '')}")
                    out.append(call.get("arguments") or "")
                elif m.get("content"):
                    out.append(m["content"])
    for tool in json.loads((DATA / "toolalpaca/eval_simulated.json").read_text()):
        for answer in tool.get("Golden_Answers") or []:
            for step in answer:
                out.append(f"Thought: I need {step.get('Action')}.\nAction: {step.get('Action')}\n"
                           f"Action Input: {step.get('Action_Input')}")
    out.append("Thought: done\nFinal Answer: The capital of France is Paris.")
    out.append('{"status_code": 200, "body": {"temp": 21}}')
    out.append("Status Code: 200. Response: {\"ok\": true}")
    return [s for s in out if s]


JUNK = ["{", "}", "[", "]", '"', "'", ":", ",", "\\", "\n", "Action:", "Action Input:", "Thought:",
        "Final Answer:", "Observation:", "```json\n", "```", "{'ids': {1, 2}}", "b'x'", "1j", "NaN",
        "Infinity", "\ud800", "\u0000", "é", "\u4e2d", "(", ")", "=", "city='Paris'", "null", "true", "9" * 50]


def mutate_text(rng: random.Random, text: str) -> str:
    """One to four edits: cut, insert junk, repeat a slice, swap case, drop a slice, nest braces."""
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        i = rng.randint(0, len(text))
        if kind == 0:
            text = text[:i]
        elif kind == 1:
            text = text[:i] + rng.choice(JUNK) + text[i:]
        elif kind == 2:
            j = rng.randint(i, min(len(text), i + 40))
            text = text[:i] + text[i:j] * rng.randint(2, 200) + text[j:]
        elif kind == 3:
            text = text.swapcase()
        elif kind == 4:
            j = rng.randint(i, min(len(text), i + 80))
            text = text[:i] + text[j:]
        elif kind == 5:
            n = rng.choice([10, 100, 1000, 4000])
            text = text[:i] + rng.choice(['{"', "[", "{", '{"a":']) * n + text[i:]
        else:
            text = text[:i] + "".join(rng.choice(JUNK) for _ in range(rng.randint(1, 30))) + text[i:]
    return text[:40_000]
