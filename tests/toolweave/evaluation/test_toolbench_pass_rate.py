"""ToolEval pass rate under the `toolbench` preset against ToolBench's own eval_pass_rate.py.

tests/data/reference/toolbench/pass_rate_golden.json holds what ToolBench's script (real evaluator,
scripted judge verdicts, one query per test set, 4 rounds) decided over 100 seeds, and the judge
requests it sent (scripts/reference/record_tooleval_pass_rate.py; see SOURCES.md).
"""
import asyncio
import json
import random
import re
from functools import cache
from pathlib import Path

from toolweave.config import RunConfig
from toolweave.evaluation.answers import from_converted
from toolweave.evaluation.judge import Judge, judge_options
from toolweave.evaluation.labels import FAIL, PASS, majority
from toolweave.evaluation.pass_rate import evaluate_pass_rate
from toolweave.presets import apply_preset
from toolweave.testing.fake_llm import FakeChatModel, tool_call

GOLDEN = Path(__file__).parents[2] / "data" / "reference" / "toolbench" / "pass_rate_golden.json"


@cache
def golden():
    return json.loads(GOLDEN.read_text())


def preset():
    return RunConfig.model_validate(apply_preset({"preset": "toolbench"})).evaluate


def scripted_judge():
    """Replays the recorded verdicts per case, in order, like the recording's fake endpoint."""
    queues = {c["name"]: [v for r in c["rounds"] for v in r] for c in golden()["cases"].values()}

    def handler(req):
        case = re.search(r"Query for case (\w+)", req["messages"][0]["content"]).group(1)
        verdict = queues[case].pop(0)
        return {"content": None, "tool_calls": [tool_call(req["tool_choice"]["function"]["name"], verdict)]}

    return FakeChatModel(handler=handler, model="scripted-judge")


def run(seed):
    ev = preset()
    model = scripted_judge()
    judge = Judge(model, **judge_options(ev))
    answers = [from_converted(c["name"], c["converted_answer"]["1"]) for c in golden()["cases"].values()]
    results = asyncio.run(evaluate_pass_rate(answers, judge, votes=ev.votes, seed=seed, concurrency=1))
    return {q.answer.query_id: q for q in results}, model


def test_vote_aggregation_is_toolbench_on_every_recorded_run():
    for run_ in golden()["runs"]:
        for name, r in run_.items():
            labels = [PASS] * r["passed"] + [FAIL] * r["failed"]
            assert (majority(labels, random.Random(0), tie="pass") == PASS) == (r["pass_rate"] == 1.0), (name, r)
    ties = [r["tie_2_pass_2_fail"] for r in golden()["runs"]]
    assert all(r["pass_rate"] == 1.0 for r in ties)  # a tie passes there; toolweave's default flips a coin
    assert majority([PASS, PASS, FAIL, FAIL], random.Random(0), tie="coin") in (PASS, FAIL)


def test_deterministic_cases_give_toolbench_labels_and_statuses():
    results, _ = run(0)
    ref = golden()["runs"][0]
    for name in ("tie_2_pass_2_fail", "3_pass_1_fail", "1_pass_3_fail", "no_finish", "unsolved_but_unsolvable"):
        q = results[name]
        assert (q.label == PASS) == (ref[name]["pass_rate"] == 1.0), name
        assert sum(r.resolved == PASS for r in q.rounds) == ref[name]["passed"], name


def test_all_unsure_rounds_are_coins_like_toolbench():
    theirs = sum(r["all_unsure"]["pass_rate"] == 1.0 for r in golden()["runs"]) / len(golden()["runs"])
    ours = sum(run(seed)[0]["all_unsure"].label == PASS for seed in range(100)) / 100
    # 4 fair coins, a tie passing: P = 11/16; 100 runs each side (sd ~0.046)
    assert abs(theirs - 11 / 16) < 0.15 and abs(ours - 11 / 16) < 0.15 and abs(ours - theirs) < 0.2


def test_judge_requests_are_toolevals():
    _, model = run(0)
    ours = sorted(json.dumps({"content": r["messages"][0]["content"], "function": r["tools"][0]["function"],
                              "temperature": r["temperature"], "max_tokens": r["max_tokens"]}, sort_keys=True)
                  for r in model.requests)
    theirs = sorted(json.dumps({"content": r["messages"][0]["content"], "function": r["functions"][0],
                                "temperature": r["temperature"], "max_tokens": r["max_tokens"]}, sort_keys=True)
                    for r in golden()["judge_requests_seed_0"])
    assert len(ours) == len(theirs) == 38 and ours == theirs
    task = next(r for r in model.requests if r["tools"][0]["function"]["name"] == "check_task_solvable")
    assert "Searches demo things. " * 30 in task["messages"][0]["content"]  # full available_tools, not cut
    assert list(task["tools"][0]["function"]["parameters"]["properties"]) == ["task_status", "reason"]  # reason after
