"""Win rate under the `toolbench` preset against ToolBench's own eval_preference.py.

tests/data/reference/toolbench/preference_golden.json holds what ToolBench's script decided (2
rounds, use_pass_rate false, real evaluator, scripted verdicts) over 20 seeds, and its judge requests
(scripts/reference/record_tooleval_preference.py; see SOURCES.md).
"""
import asyncio
import json
import re
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

from toolweave.config import RunConfig
from toolweave.evaluation.answers import from_converted
from toolweave.evaluation.judge import Judge, judge_options
from toolweave.evaluation.labels import FAIL, PASS, AnswerStatus, TaskStatus
from toolweave.evaluation.pass_rate import QueryPass, Round
from toolweave.evaluation.win_rate import evaluate_win_rate
from toolweave.presets import apply_preset
from toolweave.testing.fake_llm import FakeChatModel, tool_call

GOLDEN = Path(__file__).parents[2] / "data" / "reference" / "toolbench" / "preference_golden.json"
REF, OUT = "reference", "candidate"


@cache
def golden():
    return json.loads(GOLDEN.read_text())


def scripted_judge():
    """The recording's verdicts: each side's status for its n-th solved check, the preferred side."""
    cases = {c["name"]: c for c in golden()["cases"].values()}
    seen = defaultdict(int)

    def handler(req):
        fn = req["tool_choice"]["function"]["name"]
        text = req["messages"][0]["content"]
        case = cases[re.search(r"Query for case (\w+)\.", text).group(1)]
        if fn == "check_answer_status":
            side = re.search(r"\[(reference|candidate)\]", text).group(1)
            verdict = {"answer_status": case["status"][side][seen[case["name"], side]]}
            seen[case["name"], side] += 1
        elif fn == "select_better_answer":
            shown0 = re.search(r"\[(reference|candidate)\]", text[text.index("Answer_0:"):text.index("Answer_1:")])
            verdict = {"index": 0 if shown0.group(1) == case["prefer"] else 1}
        else:
            verdict = {"answer_status": "Unsure"}
        return {"content": None, "tool_calls": [tool_call(fn, {**verdict, "reason": "scripted"})]}

    return FakeChatModel(handler=handler, model="scripted-judge")


def query_pass(case, side, label):
    answer = from_converted(case["name"], case["examples"][side])
    r = Round(AnswerStatus.SOLVED, TaskStatus.SOLVABLE, label, label)
    return QueryPass(answer, [r] * 4, label)


def run(seed):
    ev = RunConfig.model_validate(apply_preset({"preset": "toolbench"})).evaluate
    model = scripted_judge()
    cases = list(golden()["cases"].values())
    label = {"passed": PASS, "failed": FAIL}
    refs = [query_pass(c, REF, label[c["labels"][0]]) for c in cases]
    cands = [query_pass(c, OUT, label[c["labels"][1]]) for c in cases]
    wins = asyncio.run(evaluate_win_rate(cands, refs, Judge(model, **judge_options(ev)), votes=ev.votes, seed=seed,
                                         concurrency=1))
    return {w.query_id: w for w in wins}, model


def test_every_case_is_decided_as_toolbench_decides_it():
    for seed in range(5):
        ours, _ = run(seed)
        for theirs in golden()["runs"]:
            for name, r in theirs.items():
                w = ours[name]
                assert (w.label, w.candidate_wins, w.reference_wins) == \
                    (r["label"], r["candidate_wins"], r["reference_wins"]), name


def test_judge_sees_what_eval_preference_shows_it():
    _, model = run(0)

    def key(fn, content):
        if fn == "select_better_answer":  # the two answers in either order
            a0 = content[content.index("Answer_0:"):content.index("Answer_1:")]
            a1 = content[content.index("Answer_1:"):content.index("Given above")]
            return fn, tuple(sorted((a0.split(":", 1)[1], a1.split(":", 1)[1])))
        return fn, content

    ours = Counter(key(r["tool_choice"]["function"]["name"], r["messages"][0]["content"]) for r in model.requests)
    theirs = Counter(key(r["function_call"]["name"], r["messages"][0]["content"])
                     for r in golden()["judge_requests_seed_0"]
                     if r["function_call"]["name"] != "check_task_solvable")  # asked there, its answer unused
    assert ours == theirs and sum(theirs.values()) == 32
    long = next(k for k in ours if k[0] == "select_better_answer" and "long_answers" in k[1][0])
    shown = [json.loads(x.strip()) for x in long[1]]
    assert all(len(a["final_answer"]) == 1000 and "method" not in a for a in shown)
