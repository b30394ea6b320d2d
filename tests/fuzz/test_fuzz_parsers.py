"""≥ 10,000 malformed model replies through the parsers, and episodes driven by them: no exception,
bounded CPU per reply, arguments that come back are JSON, every episode is a writable record."""
import asyncio
import json
import random
import time

import pytest

from toolweave.config import SolveConfig
from toolweave.io import to_table
from toolweave.parsing import parse_arguments, parse_executor_reply, parse_react
from toolweave.schemas import Episode, Function, Instruction, Tool
from toolweave.search import solve_instruction
from toolweave.testing.fake_llm import FakeChatModel, tool_call

from .conftest import mutate_text, report

pytestmark = pytest.mark.slow
CASES = 10_000
CPU_LIMIT_S = 0.1  # CPU seconds per reply and parser (an actor's event loop runs thousands of episodes)


def test_malformed_replies_never_crash_the_parsers(real_replies):
    rng = random.Random(15)
    crashes, slow, not_json = [], [], []
    worst = 0.0
    for i in range(CASES):
        text = mutate_text(rng, rng.choice(real_replies))
        results, spent = [], []
        try:
            for parse in (parse_react, parse_arguments, parse_executor_reply):
                start = time.process_time()
                results.append(parse(text))
                spent.append(time.process_time() - start)
        except Exception as e:  # a crash: collected, reported with its input
            crashes.append((text[:200], repr(e)))
            continue
        step, (args, _), (code, body, _) = results
        worst = max(worst, *spent)
        if max(spent) > CPU_LIMIT_S:
            slow.append((text[:120], [round(x, 3) for x in spent]))
        for parsed in (args, step.arguments):
            if parsed is not None:
                try:
                    json.dumps(parsed, allow_nan=True)
                except (TypeError, ValueError) as e:
                    not_json.append((text[:120], repr(e)))
        assert isinstance(code, int) and isinstance(body, str)
        assert step.error is not None or step.action is not None or step.final_answer is not None
    report("parsers", replies=CASES, crashes=len(crashes), over_cpu_limit=len(slow),
           worst_cpu_ms=round(worst * 1000, 1))
    assert crashes == [] and not_json == []
    assert slow == []


def _demo_tool() -> Tool:
    fn = Function(name="lookup", description="look up", parameters={
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})
    return Tool(id="demo", name="demo", description="demo", functions=[fn])


class _Echo:
    async def execute(self, tool, fn, args):
        from toolweave.executors import Observation
        return Observation(200, json.dumps({"echo": args}))


def test_episodes_driven_by_malformed_replies_are_recorded_never_lost(real_replies):
    rng = random.Random(16)
    episodes = 300

    def handler(req):
        text = mutate_text(rng, rng.choice(real_replies))
        kind = rng.randrange(4)
        if kind == 0:
            return text
        if kind == 1:
            return {"content": None, "tool_calls": [tool_call(rng.choice(["lookup_for_demo", "Finish", "nope"]), text)]}
        if kind == 2:
            return {"content": text, "tool_calls": [tool_call("lookup_for_demo", {"q": text[:50]})]}
        return {"content": None, "tool_calls": [tool_call("Finish", {"return_type": "give_answer",
                                                                      "final_answer": text[:100]})]}

    done = []
    for i in range(episodes):
        llm = FakeChatModel(handler=handler)
        ep = asyncio.run(solve_instruction(Instruction(id=f"q{i}", text="find x", tool_ids=["demo"]), [_demo_tool()],
                                           llm, _Echo(), SolveConfig(method=rng.choice(["cot", "dfsdt"]),
                                                                     max_steps=4, max_llm_calls=8)))
        done.append(ep)
    written = rejected = 0
    for ep in done:  # as the stage layer writes them: a record Parquet cannot hold is a reject, with the reason
        try:
            written += to_table([ep], Episode).num_rows
        except (UnicodeEncodeError, ValueError, TypeError):
            rejected += 1
    report("episodes", episodes=episodes, written=written, rejected_unwritable=rejected,
           lost=episodes - written - rejected)
    assert written + rejected == episodes and written > episodes // 2
