"""DFSDT under the `toolbench` preset sends exactly ToolBench's request sequence.

The golden file holds what OpenBMB/ToolBench's own DFS.py + rapidapi.py sent on scripted model
replies and scripted API responses (recorded by scripts/reference/record_toolbench_dfsdt.py; see
tests/data/reference/SOURCES.md): three named scripts and 120 random ones. Here toolweave's search runs
on the same replies and responses, and every request's messages (normalized to ToolBench's
function-calling shape), the function list, the sampling settings, the APIs executed and the outcome
must be equal.
"""
import json

import pytest

from toolweave.config import RunConfig
from toolweave.converters.toolbench import episode_to_train_messages
from toolweave.presets import apply_preset
from toolweave.testing.toolbench_golden import digest, golden, run_script, script as named, toolbench_shape


def parses(text):
    try:
        return text == "" or isinstance(json.loads(text), dict)
    except ValueError:
        return False


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
    # the kept path as ToolBench's train_messages: one example per step, with the latest diversity prompt
    if script["valid_data"]:
        train = episode_to_train_messages(ep)
        if "train_messages" in script:
            assert train == script["train_messages"]
        assert digest(train) == script["train_messages_digest"]
        assert ep.extra["toolbench"]["answer_generation"]["final_answer"] == script["final_answer"]
    return ep


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
