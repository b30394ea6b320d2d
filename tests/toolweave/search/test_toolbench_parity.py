"""DFSDT under the `toolbench` preset sends exactly ToolBench's request sequence.

The golden file holds what OpenBMB/ToolBench's own DFS.py + rapidapi.py sent on scripted model
replies and scripted API responses (recorded by scripts/reference/record_toolbench_dfsdt.py; see
tests/data/reference/SOURCES.md): three named scripts and 120 random ones. Here toolweave's search runs
on the same replies and responses, and every request's messages (normalized to ToolBench's
function-calling shape), the function list, the sampling settings, the APIs executed and the outcome
must be equal.
"""
import asyncio
import gzip
import hashlib
import json
from functools import cache
from pathlib import Path

import pytest

from toolweave.config import RunConfig
from toolweave.executors import Observation
from toolweave.presets import apply_preset
from toolweave.schemas import Instruction
from toolweave.search import solve_instruction
from toolweave.testing.fake_llm import FakeChatModel
from toolweave.toolsets import import_paths
from toolweave.toolsets.naming import api_name, standardize

DATA = Path(__file__).parents[2] / "data" / "reference" / "toolbench"


@cache
def golden() -> dict:
    with gzip.open(DATA / "dfsdt_golden.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


@cache
def tools_by_key():
    result = import_paths([str(DATA / "toolenv")])
    assert not result.rejects
    return {(t.category, standardize(t.name)): t for t in result.tools}


def instruction_for(query_id) -> tuple[Instruction, list]:
    q = next(q for q in json.loads((DATA / "queries.json").read_text()) if q["query_id"] == query_id)
    tools, refs = [], []
    for a in q["api_list"]:
        t = tools_by_key()[(a["category_name"], standardize(a["tool_name"]))]
        if t not in tools:
            tools.append(t)
        refs.append({"tool": t.id, "function": a["api_name"]})
    inst = Instruction(id=f"q{query_id}", text=q["query"], tool_ids=[t.id for t in tools], extra={"api_list": refs})
    return inst, tools


def preset_config() -> RunConfig:
    return RunConfig.model_validate(apply_preset({"preset": "toolbench"}))


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def toolbench_shape(messages):
    """toolweave's tool_calls / tool messages as ToolBench's function_call / function messages."""
    out = []
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "function", "content": m["content"], "name": m["name"]})
            continue
        n = {"role": m["role"], "content": m.get("content")}
        if m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            n["function_call"] = {"name": fn["name"], "arguments": fn["arguments"]}
        out.append(n)
    return out


def as_reply(i, message):
    reply = {"content": message.get("content")}
    if "function_call" in message:
        reply["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": dict(message["function_call"])}]
    return reply


class ScriptedServer:
    """The recorded API responses, in call order, as an executor."""

    def __init__(self, observations):
        self.observations = [list(o) for o in observations]
        self.executed = []

    async def execute(self, tool, fn, args):
        self.executed.append([api_name(fn.name), args])
        error, response = self.observations.pop(0)
        return Observation(200, response, error)


def parses(text):
    try:
        return text == "" or isinstance(json.loads(text), dict)
    except ValueError:
        return False


def run_script(script):
    cfg = preset_config()
    inst, tools = instruction_for(script["query"])
    llm = FakeChatModel([as_reply(i, m) for i, m in enumerate(script["replies"])])
    server = ScriptedServer(script["observations"])
    ep = asyncio.run(solve_instruction(inst, tools, llm, server, cfg.solve, env_cfg=cfg.executor))
    return ep, llm, server


def check_against_golden(script):
    ep, llm, server = run_script(script)
    msgs = [toolbench_shape(r["messages"]) for r in llm.requests]
    if "request_messages" in script:
        assert msgs == script["request_messages"]
    assert len(llm.requests) == script["requests"]
    assert [digest(m) for m in msgs] == script["request_digests"]
    assert sorted({digest([t["function"] for t in r["tools"]]) for r in llm.requests}) == script["functions_digest"]
    assert {(r["temperature"], r["max_tokens"], r["tool_choice"]) for r in llm.requests} == {(1.0, 1024, "auto")}
    # the server answers a tool input that is not JSON itself; the others reach the API
    assert server.executed == [[n, json.loads(a) if a else {}] for n, a in script["executed"] if parses(a)]
    answered = ep.status == "answered"
    assert answered == (script["valid_data"] and script["finish_type"] == "give_answer")
    assert (not answered and bool(ep.extra["give_up_nodes"])) == (script["finish_type"] == "give_up")
    return ep


def named(name):
    return next(s for s in golden()["scripts"] if s["name"] == name)


def test_first_request_is_toolbench_verbatim():
    for qid, first in golden()["first_requests"].items():
        script = {"query": int(qid), "replies": [{"role": "assistant", "content": None, "function_call": {
            "name": "Finish", "arguments": '{"return_type": "give_answer", "final_answer": "x"}'}}],
            "observations": []}
        _, llm, _ = run_script(script)
        assert toolbench_shape(llm.requests[0]["messages"]) == first["messages"]
        assert [t["function"] for t in llm.requests[0]["tools"]] == first["functions"]


def test_always_call_with_thought_makes_30_requests_of_4_call_leaves():
    script = named("always_call_with_thought")
    ep = check_against_golden(script)
    assert script["requests"] == 30 and not script["valid_data"]
    assert ep.llm_calls == 30 and ep.status == "max_steps"
    leaves = [n for n in ep.tree if n["id"] != 0 and not any(c["parent"] == n["id"] for c in ep.tree)]
    assert len(leaves) == 16 and {n["depth"] for n in leaves} == {12}
    by_id = {n["id"]: n for n in ep.tree}
    for leaf in leaves:  # every leaf holds exactly 4 calls
        n, calls = leaf, 0
        while n["parent"] is not None:
            calls, n = calls + 1, by_id[n["parent"]]
        assert calls == 4


def test_always_call_without_thought_makes_126_requests_of_6_call_chains():
    script = named("always_call_no_thought")
    ep = check_against_golden(script)
    assert script["requests"] == 126 and ep.llm_calls == 126 and not script["valid_data"]
    assert max(n["depth"] for n in ep.tree) == 12 and len(ep.messages) == 2 + 2 * 6


def test_thought_turns_give_up_then_answer():
    script = named("thought_turns_give_up_then_answer")
    ep = check_against_golden(script)
    assert ep.status == "answered" and ep.final_answer == "The answer is 42."


@pytest.mark.parametrize("index", range(120))
def test_random_script(index):
    check_against_golden(named(f"random_{index}"))


def test_toolweave_defaults_stay_outside_the_preset():
    cfg = RunConfig()
    assert (cfg.solve.depth_unit, cfg.solve.tool_choice, cfg.solve.prompts) == ("turn", "required", "toolweave")
    assert (cfg.executor.argument_check, cfg.executor.finish_check, cfg.executor.name_match) == \
        ("schema", "strict", "exact")
    user = RunConfig.model_validate(apply_preset({"preset": "toolbench", "solve": {"max_llm_calls": 50}}))
    assert user.solve.max_llm_calls == 50 and user.solve.depth_unit == "level"  # the user's keys win
