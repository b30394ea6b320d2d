"""Record ToolBench's ToolEval pass-rate aggregation (`toolbench/tooleval/eval_pass_rate.py`) on
scripted judge verdicts, as golden data.

Runs the reference's own script (runpy, as `__main__`) from a checkout given on the command line,
with its real evaluator (`evaluators/tooleval_gpt-3.5-turbo_default`, `registered_cls/rtl.py`), one
query per test set, 4 evaluation rounds, one thread (so rounds run in order). Only the edge is
replaced: `openai.ChatCompletion.create` (what `OpenaiPoolRequest.request` calls) returns the next
scripted verdict for the query in the prompt and keeps the request. The script is run once per
seed (`random.seed(seed)` first), because Unsure labels are settled by `random.random()`.

    PYTHONPATH=<termcolor,tenacity,backoff-free> python scripts/reference/record_tooleval_pass_rate.py \
        --toolbench /tmp/ref/toolbench --seeds 100 --out tests/data/reference/toolbench/pass_rate_golden.json
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import re
import runpy
import sys
import tempfile
import types
from pathlib import Path

from tooleval_harness import commit_of, install_openai, setup

FINISH_STEP = {"name": "Finish", "arguments": '{"return_type": "give_answer", "final_answer": "It is 42."}',
               "response": ""}
SEARCH_STEP = {"name": "search_for_demo", "arguments": '{"q": "x"}', "response": '{"error": "", "response": "42"}'}


def _answer(final: str, steps: list[dict]) -> dict:
    node: dict = {"role": "tool", "message": steps[-1], "next": []}
    for s in reversed(steps[:-1]):
        node = {"role": "tool", "message": s, "next": [node]}
    return {"method": "DFS_woFilter_w2", "total_steps": len(steps), "final_answer": final,
            "answer_details": [{"role": "system", "message": "", "next": [{"role": "user", "message": "q",
                                                                            "next": [node]}]}]}


def V(answer=None, task=None):  # noqa: N802 - one scripted round's verdicts
    out = []
    if answer:
        out.append({"answer_status": answer[0], "reason": f"answer {answer[0]}"})
        if answer[0] == "Unsure":
            out.append({"answer_status": answer[1], "reason": f"details {answer[1]}"})
    if task:
        out.append({"task_status": task, "reason": f"task {task}"})
    return out


# test set -> (case name, answer, verdicts of the 4 rounds in order)
CASES = {
    "G1_instruction": ("tie_2_pass_2_fail", True, [V(("Solved",)), V(("Solved",)), V(("Unsolved",), "Solvable"),
                                                   V(("Unsolved",), "Solvable")]),
    "G1_category": ("all_unsure", True, [V(("Unsure", "Unsure"), "Unsure")] * 4),
    "G1_tool": ("3_pass_1_fail", True, [V(("Solved",))] * 3 + [V(("Unsolved",), "Solvable")]),
    "G2_instruction": ("1_pass_3_fail", True, [V(("Solved",))] + [V(("Unsolved",), "Solvable")] * 3),
    "G2_category": ("no_finish", False, [[]] * 4),
    "G3_instruction": ("unsolved_but_unsolvable", True, [V(("Unsolved",), "Unsolvable")] * 4),
}


def converted(test_set: str) -> dict:
    name, finished, _ = CASES[test_set]
    steps = [SEARCH_STEP, FINISH_STEP] if finished else [SEARCH_STEP]
    final = '{"return_type": "give_answer", "final_answer": "It is 42."}' if finished else ""
    tools = [{"name": "search_for_demo", "description": "Searches demo things. " * 30,
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
             {"name": "Finish", "description": "Finish the task.", "parameters": {"type": "object"}}]
    return {"1": {"query": f"Query for case {name}: what is ü?", "available_tools": tools,
                  "answer": _answer(final, steps)}}


def main() -> None:
    a, root, tooleval = setup(100)
    sys.modules.setdefault("backoff", types.SimpleNamespace(on_exception=lambda *x, **k: (lambda f: f),
                                                             expo=None))
    state: dict = {"requests": [], "verdicts": {}}
    install_openai(state, lambda fn, text: state["verdicts"][re.search(r"Query for case (\w+)", text).group(1)].pop(0))
    import utils  # noqa: F401 - its import seeds random with 42; import it before seeding per run

    work = Path(tempfile.mkdtemp())
    model = "candidate"
    (work / "answers" / model).mkdir(parents=True)
    (work / "ids").mkdir()
    (work / "save").mkdir()
    for ts in CASES:
        (work / "answers" / model / f"{ts}.json").write_text(json.dumps(converted(ts)))
        (work / "ids" / f"{ts}.json").write_text(json.dumps({"1": ""}))
    runs = []
    first_requests = None
    for seed in range(a.seeds):
        for f in (work / "save").iterdir():
            f.unlink()
        state["requests"] = []
        state["verdicts"] = {name: [v for r in rounds for v in r] for name, _, rounds in CASES.values()}
        sys.argv = ["eval_pass_rate.py", "--converted_answer_path", str(work / "answers"), "--save_path",
                    str(work / "save"), "--reference_model", model, "--test_ids", str(work / "ids"),
                    "--max_eval_threads", "1", "--evaluate_times", "4"]
        random.seed(seed)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(tooleval / "eval_pass_rate.py"), run_name="__main__")
        rates = dict(re.findall(r"Test set: (\w+)\. Model: \w+\. Pass rate: ([0-9.]+)", out.getvalue()))
        run = {}
        for ts, (name, _, _) in CASES.items():
            cnt = json.loads((work / "save" / f"{ts}_{model}.json").read_text())["1"]
            run[name] = {"passed": cnt["passed"], "failed": cnt["failed"], "pass_rate": float(rates[ts]),
                         "is_solved": cnt["is_solved"], "task_solvable": cnt["task_solvable"]}
        runs.append(run)
        if first_requests is None:
            first_requests = state["requests"]
    commit = commit_of(root)
    doc = {"source": {"repo": "OpenBMB/ToolBench", "commit": commit,
                      "files": ["toolbench/tooleval/eval_pass_rate.py", "toolbench/tooleval/evaluators/"
                                "registered_cls/rtl.py", "toolbench/tooleval/evaluators/registered_cls/tooleval.py",
                                "toolbench/tooleval/evaluators/tooleval_gpt-3.5-turbo_default/"]},
           "cases": {ts: {"name": name, "converted_answer": converted(ts), "rounds": rounds}
                     for ts, (name, _, rounds) in CASES.items()},
           "runs": runs, "judge_requests_seed_0": first_requests}
    Path(a.out).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
