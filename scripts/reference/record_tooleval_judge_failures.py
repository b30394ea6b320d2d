"""Record how ToolEval's judge calls handle bad and failing replies (retries, waits, what is parsed,
what stops the run), for ToolBench and StableToolBench, as golden data.

Imports the reference's evaluator (`evaluators/tooleval_gpt-3.5-turbo_default`, `registered_cls/
rtl.py` + `tooleval.py` + `utils.py`) from a checkout given on the command line and calls its own
`check_is_solved` / `check_task_solvable` / `select_better_answer` (return_reason=True, as
eval_pass_rate.py / eval_preference.py call them). Only the edge is replaced: the `openai` module
(ToolBench: `openai.ChatCompletion.create`; StableToolBench: `OpenAI(...).chat.completions.create`)
answers each case's scripted replies in order, and `time.sleep` (tenacity's wait) is recorded
instead of slept. Per case: the requests made, the waits, and the value returned or the exception
that escaped (which ends eval_pass_rate.py: `thd.result()` re-raises it; StableToolBench's
`compute_pass_rate` is wrapped in `backoff.on_exception(backoff.expo, Exception, max_time=15)` first).

    PYTHONPATH=<tenacity,pyyaml> python scripts/reference/record_tooleval_judge_failures.py \
        --toolbench /tmp/ref/toolbench --stabletoolbench /tmp/ref/stb \
        --out tests/data/reference/toolbench/judge_failures_golden.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

OK_SOLVED = {"call": {"answer_status": "Solved", "reason": "names the capital"}}
PROSE = {"prose": "The answer looks Solved to me."}
JSON_IN_CONTENT = {"prose": '{"answer_status": "Solved", "reason": "in content"}'}
DOWN = {"error": "APIConnectionError"}

# case -> (question, scripted replies in order); a reference stops asking once it has a result
CASES = {
    "valid_call": ("check_is_solved", [OK_SOLVED]),
    "prose_twice_then_valid": ("check_is_solved", [PROSE, PROSE, OK_SOLVED]),
    "prose_always": ("check_is_solved", [PROSE] * 4),
    "json_in_content_always": ("check_is_solved", [JSON_IN_CONTENT] * 4),
    "bad_json_arguments_always": ("check_is_solved", [{"raw_arguments": "{answer_status: Solved"}] * 4),
    "endpoint_down_twice_then_valid": ("check_is_solved", [DOWN, DOWN, OK_SOLVED]),
    "endpoint_down_always": ("check_is_solved", [DOWN] * 4),
    "value_outside_enum": ("check_is_solved", [{"call": {"answer_status": "Perhaps", "reason": "r"}}, OK_SOLVED,
                                               OK_SOLVED]),
    "reason_missing": ("check_is_solved", [{"call": {"answer_status": "Solved"}}, OK_SOLVED, OK_SOLVED]),
    "decision_missing": ("check_is_solved", [{"call": {"reason": "no decision"}}, OK_SOLVED, OK_SOLVED]),
    "arguments_not_an_object": ("check_is_solved", [{"raw_arguments": '["Solved"]'}, OK_SOLVED, OK_SOLVED]),
    "task_unsolvable": ("check_task_solvable", [{"call": {"task_status": "Unsolvable", "reason": "r"}}]),
    "task_prose_then_valid": ("check_task_solvable", [PROSE, {"call": {"task_status": "Solvable", "reason": "r"}}]),
    "index_as_string": ("select_better_answer", [{"call": {"index": "1", "reason": "r"}}]),
    "index_out_of_range_always": ("select_better_answer", [{"call": {"index": 5, "reason": "r"}}] * 10),
    "index_out_of_range_then_valid": ("select_better_answer", [{"call": {"index": 5, "reason": "r"}},
                                                               {"call": {"index": 0, "reason": "r"}}]),
}

ANSWER = {"method": "DFS_woFilter_w2", "total_steps": 2, "final_answer": "Paris is the capital.",
          "answer_details": [{"role": "tool", "message": {"name": "Finish", "arguments": "{}", "response": ""},
                              "next": []}]}
TASK = {"query": "What is the capital of France?", "available_tools": [{"name": "Finish"}]}


class APIConnectionError(Exception):
    pass


def _message(step: dict, style: str) -> types.SimpleNamespace:
    if "error" in step:
        raise APIConnectionError("scripted: endpoint unreachable")
    if "prose" in step:
        args = None
    else:
        args = step["raw_arguments"] if "raw_arguments" in step else json.dumps(step["call"])
    content = step.get("prose")
    if style == "toolbench":
        fc = None if args is None else types.SimpleNamespace(arguments=args)
        return types.SimpleNamespace(function_call=fc, content=content)
    calls = None if args is None else [types.SimpleNamespace(function=types.SimpleNamespace(arguments=args))]
    return types.SimpleNamespace(tool_calls=calls, content=content)


def install_openai(state: dict, style: str) -> None:
    def create(messages, **kwargs):
        state["requests"] += 1
        step = state["replies"].pop(0)
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=_message(step, style))])

    openai = types.ModuleType("openai")
    openai.ChatCompletion = types.SimpleNamespace(create=create)  # ToolBench (openai<1)

    class OpenAI:  # StableToolBench (openai>=1)
        def __init__(self, **kwargs):
            self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=create))

    openai.OpenAI = OpenAI
    sys.modules["openai"] = openai


def record(root: Path, style: str) -> dict:
    tooleval = root / "toolbench" / "tooleval"
    for name in [m for m in sys.modules if m == "evaluators" or m.startswith("evaluators.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tooleval))
    state: dict = {"requests": 0, "replies": [], "sleeps": []}
    install_openai(state, style)
    time.sleep = lambda s: state["sleeps"].append(s)  # tenacity's nap.sleep calls time.sleep
    from evaluators import load_registered_automatic_evaluator
    from evaluators.registered_cls.rtl import TaskStatus
    ev = load_registered_automatic_evaluator(evaluator_name="tooleval_gpt-3.5-turbo_default",
                                             evaluators_cfg_path=str(tooleval / "evaluators"))
    out = {}
    for case, (question, replies) in CASES.items():
        state.update(requests=0, replies=list(replies), sleeps=[])
        try:
            if question == "check_is_solved":
                status, reason = ev.check_is_solved(TASK, json.loads(json.dumps(ANSWER)), return_reason=True)
                result = {"value": status.value, "reason": reason}
            elif question == "check_task_solvable":
                status, reason = ev.check_task_solvable(TASK, has_been_solved=False, return_reason=True)
                result = {"value": status.value, "reason": reason}
            else:
                answers = [ANSWER, dict(ANSWER, final_answer="Lyon.")]
                result = {"value": ev.select_better_answer(TASK, TaskStatus.Solvable, [0, 1], answers, None)}
        except Exception as e:  # noqa: BLE001 - what escapes is the recorded behaviour
            result = {"raised": type(e).__name__, "message": str(e)[:200]}
        out[case] = {"question": question, "replies": replies, "requests": state["requests"],
                     "sleeps": state["sleeps"], **result}
    sys.path.remove(str(tooleval))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolbench", required=True)
    ap.add_argument("--stabletoolbench", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    pool = Path(tempfile.mkdtemp()) / "api_pool.json"
    pool.write_text(json.dumps([{"api_key": "not-a-key"}]))
    os.environ["API_POOL_FILE"] = str(pool)
    golden = {}
    for style, root in (("toolbench", Path(a.toolbench)), ("stabletoolbench", Path(a.stabletoolbench))):
        commit = (root / ".commit").read_text().strip() if (root / ".commit").exists() else ""
        golden[style] = {"commit": commit, "cases": record(root.resolve(), style)}
    Path(a.out).write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
