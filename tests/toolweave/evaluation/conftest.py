"""A scripted ToolEval judge for the evaluation tests: answers each forced function call from a table."""
from __future__ import annotations

import json
import types

import pytest

from collections.abc import Callable
from typing import Any

from toolweave.testing.fake_llm import FakeChatModel, tool_call


def function_of(req: dict[str, Any]) -> str:
    tc = req.get("tool_choice")
    if isinstance(tc, dict):
        return tc["function"]["name"]
    # JSON-schema mode: the decisive field names the question; the prompt tells the two answer checks apart
    props = (req.get("json_schema") or {}).get("properties", {})
    if "answer_status" in props:
        text = req["messages"][0]["content"]
        return "parse_answer_status" if "execution detail" in text else "check_answer_status"
    return {"task_status": "check_task_solvable", "index": "select_better_answer"}.get(
        next((k for k in props if k not in ("reason", "analysis")), ""), "report_correctness")


def scripted_judge(answers: dict[str, Any] | Callable[[str, dict], Any]) -> FakeChatModel:
    """`answers`: function name -> the value of its decisive field (or a callable(function, request))."""
    keys = {"check_answer_status": "answer_status", "parse_answer_status": "answer_status",
            "check_task_solvable": "task_status", "select_better_answer": "index"}

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        fn = function_of(req)
        value = answers(fn, req) if callable(answers) else answers[fn]
        if isinstance(value, dict):  # a whole reply message (to script garbage)
            return value
        if req.get("json_schema") is not None:
            return json.dumps({"reason": "scripted", keys[fn]: value})
        return {"content": None, "tool_calls": [tool_call(fn, {"reason": "scripted", keys[fn]: value})]}

    return FakeChatModel(handler=handler, model="scripted-judge")


def calls_to(model: FakeChatModel, function: str) -> int:
    return sum(1 for r in model.requests if function_of(r) == function)


@pytest.fixture
def judge_kit():
    """`judge_kit.make(table_or_fn)` -> FakeChatModel; `judge_kit.calls(model, function)` -> count."""
    return types.SimpleNamespace(make=scripted_judge, calls=calls_to)
