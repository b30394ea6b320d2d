"""Record ToolBench's ToolEval win rate (`toolbench/tooleval/eval_preference.py`, its defaults:
`--evaluate_times 2`, `--use_pass_rate false`) on scripted judge verdicts, as golden data.

Runs the reference's own script (runpy, as `__main__`) from a checkout given on the command line,
with its real evaluator (`registered_cls/rtl.py` `normalized_openai_completions`,
`base.py` `annotate_preference`), one query per test set, one thread. Inputs written here: both
models' converted answers and the pass-rate CSVs the script reads (`eval_pass_rate.py`'s
`write_results` columns). Only `openai.ChatCompletion.create` is replaced: check_answer_status
answers from the status the case gives each side in that round (the side is named in its final
answer, the round counted per side), check_task_solvable says Solvable, select_better_answer picks
the side the case prefers (by the marker in the shown answers). Run once per seed.

    PYTHONPATH=<termcolor,tenacity> python scripts/reference/record_tooleval_preference.py \
        --toolbench /tmp/ref/toolbench --seeds 20 --out tests/data/reference/toolbench/preference_golden.json
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import re
import runpy
import sys
import tempfile
from pathlib import Path

from tooleval_harness import commit_of, install_openai, setup

REF, OUT = "reference", "candidate"
# test set -> case: pass-rate labels, each side's answer status per round, who select_better prefers
CASES = {
    "G1_instruction": {"name": "only_reference_passed", "labels": ("passed", "failed"),
                       "status": {REF: ["Solved"] * 2, OUT: ["Unsolved"] * 2}, "prefer": REF},
    "G1_category": {"name": "both_solved_judge_prefers_candidate", "labels": ("passed", "passed"),
                    "status": {REF: ["Solved"] * 2, OUT: ["Solved"] * 2}, "prefer": OUT},
    "G1_tool": {"name": "only_candidate_unsure", "labels": ("failed", "failed"),
                "status": {REF: ["Unsolved"] * 2, OUT: ["Unsure"] * 2}, "prefer": REF},
    "G2_instruction": {"name": "statuses_flip_between_rounds", "labels": ("passed", "passed"),
                       "status": {REF: ["Unsolved", "Solved"], OUT: ["Solved", "Unsolved"]}, "prefer": REF},
    "G2_category": {"name": "long_answers_both_unsolved", "labels": ("failed", "failed"),
                    "status": {REF: ["Unsolved"] * 2, OUT: ["Unsolved"] * 2}, "prefer": OUT},
    "G3_instruction": {"name": "both_unsure_judge_prefers_reference", "labels": ("passed", "passed"),
                       "status": {REF: ["Unsure"] * 2, OUT: ["Unsure"] * 2}, "prefer": REF},
}


def answer(case: dict, side: str) -> dict:
    text = f"[{side}] The answer for {case['name']}."
    if case["name"].startswith("long"):
        text += " More detail." * 200
    final = json.dumps({"return_type": "give_answer", "final_answer": text})
    finish = {"name": "Finish", "arguments": final, "response": ""}
    search = {"name": "search_for_demo", "arguments": json.dumps({"q": side}), "response": f"result for {side}"}
    node = {"role": "tool", "message": finish, "next": []}
    node = {"role": "tool", "message": search, "next": [node]}
    return {"method": "DFS_woFilter_w2", "total_steps": 2, "final_answer": final,
            "answer_details": [{"role": "system", "message": "", "next": [{"role": "user", "message": "q",
                                                                            "next": [node]}]}]}


def example(case: dict, side: str) -> dict:
    tools = [{"name": "search_for_demo", "description": "Searches.", "parameters": {"type": "object"}},
             {"name": "Finish", "description": "Finish.", "parameters": {"type": "object"}}]
    return {"query": f"Query for case {case['name']}.", "available_tools": tools, "answer": answer(case, side)}


def verdicts(state: dict):
    def verdict_for(fn: str, text: str) -> dict:
        case = next(c for c in CASES.values() if f"Query for case {c['name']}." in text)
        if fn == "check_answer_status":
            side = re.search(r"\[(reference|candidate)\]", text).group(1)
            k = state["rounds"][(case["name"], side)]
            state["rounds"][(case["name"], side)] += 1
            return {"answer_status": case["status"][side][k], "reason": "scripted"}
        if fn == "check_task_solvable":
            return {"task_status": "Solvable", "reason": "scripted"}
        if fn == "select_better_answer":
            first = text.index("Answer_0:"), text.index("Answer_1:")
            shown0 = re.search(r"\[(reference|candidate)\]", text[first[0]:first[1]]).group(1)
            return {"index": 0 if shown0 == case["prefer"] else 1, "reason": "scripted"}
        return {"answer_status": "Unsure", "reason": "scripted"}
    return verdict_for


PASS_COLUMNS = ["query", "solvable", "available_tools", "model_intermediate_steps", "model_final_step", "model",
                "query_id", "is_solved", "pass_rate_label", "reason", "not_hallucinate"]


def main() -> None:
    a, root, tooleval = setup(20)
    state: dict = {"requests": []}
    install_openai(state, verdicts(state))
    import utils  # noqa: F401 - seeds random with 42 on import; imported before seeding per run

    work = Path(tempfile.mkdtemp())
    for d in ("answers/" + REF, "answers/" + OUT, "ids", "pass", "save"):
        (work / d).mkdir(parents=True)
    for ts, case in CASES.items():
        for side in (REF, OUT):
            (work / "answers" / side / f"{ts}.json").write_text(json.dumps({"1": example(case, side)}))
        (work / "ids" / f"{ts}.json").write_text(json.dumps({"1": ""}))
        for side, label in zip((REF, OUT), case["labels"]):
            with open(work / "pass" / f"{ts}_{side}.csv", "w", newline="") as f:
                w = csv.writer(f, delimiter="\t")
                w.writerow(PASS_COLUMNS)
                w.writerow([example(case, side)["query"], "TaskStatus.Solvable", "[]", "", "", side, "1",
                            "AnswerStatus.Solved", label, "", "True"])
    runs, first_requests = [], None
    for seed in range(a.seeds):
        for f in (work / "save").iterdir():
            f.unlink()
        # a fresh run of eval_preference.py fails in round 1 (KeyError 'round_1': only round_0 is set up
        # when a query is first seen); a resume file with both rounds incomplete is what it reads instead
        for ts in CASES:
            (work / "save" / f"{ts}_{REF}_{OUT}.json").write_text(json.dumps(
                {"1": {REF: 0, OUT: 0, "round_0": "incomplete", "round_1": "incomplete"}}))
        state["requests"] = []
        state["rounds"] = {(c["name"], s): 0 for c in CASES.values() for s in (REF, OUT)}
        sys.argv = ["eval_preference.py", "--converted_answer_path", str(work / "answers"), "--reference_model", REF,
                    "--output_model", OUT, "--test_ids", str(work / "ids"), "--save_path", str(work / "save"),
                    "--pass_rate_result_path", str(work / "pass"), "--max_eval_threads", "1"]
        random.seed(seed)
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(tooleval / "eval_preference.py"), run_name="__main__")
        run = {}
        for ts, case in CASES.items():
            d = json.loads((work / "save" / f"{ts}_{REF}_{OUT}.json").read_text())["1"]
            run[case["name"]] = {"reference_wins": d[REF], "candidate_wins": d[OUT],
                                 "label": "Win" if d[OUT] > d[REF] else "Lose" if d[OUT] < d[REF] else "Tie"}
        runs.append(run)
        if first_requests is None:
            first_requests = state["requests"]
    commit = commit_of(root)
    doc = {"source": {"repo": "OpenBMB/ToolBench", "commit": commit,
                      "files": ["toolbench/tooleval/eval_preference.py",
                                "toolbench/tooleval/evaluators/registered_cls/rtl.py",
                                "toolbench/tooleval/evaluators/registered_cls/base.py"],
                      "settings": {"evaluate_times": 2, "use_pass_rate": "false"}},
           "cases": {ts: {**c, "examples": {s: example(c, s) for s in (REF, OUT)}} for ts, c in CASES.items()},
           "runs": runs, "judge_requests_seed_0": first_requests}
    Path(a.out).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
