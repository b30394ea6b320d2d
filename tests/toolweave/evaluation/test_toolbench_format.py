"""Scoring StableToolBench's example answers reproduces its result files' structure (and, with a judge
that says Solved, its labels: the CoT run's 588 never called Finish, so it fails unjudged)."""
import asyncio
import csv
import json
from pathlib import Path

import pytest

from toolweave.evaluation.answers import load_converted
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.pass_rate import evaluate_pass_rate
from toolweave.evaluation.toolbench_format import (PASS_RATE_COLUMNS, PREFERENCE_COLUMNS, write_pass_rate_results,
                                                   write_preference_results)
from toolweave.evaluation.win_rate import evaluate_win_rate

DATA = Path(__file__).parents[2] / "data" / "stabletoolbench" / "data_example"
MODELS = ["virtual_chatgpt_cot", "virtual_chatgpt_dfs"]


def _score(model_name, judge_model):
    answers, bad = load_converted(DATA / "model_predictions_converted" / model_name / "G1_instruction.json")
    assert bad == [] and len(answers) == 3
    return asyncio.run(evaluate_pass_rate(answers, Judge(judge_model), votes=3, seed=0))


@pytest.mark.parametrize("model_name", MODELS)
def test_pass_rate_results_reproduce_stabletoolbench_files(tmp_path, judge_kit, model_name):
    judge = judge_kit.make({"check_answer_status": "Solved"})
    results = _score(model_name, judge)
    jpath, cpath = write_pass_rate_results(results, tmp_path, "G1_instruction", model_name)
    ours = json.loads(jpath.read_text())
    ref_dir = DATA / "pass_rate_results" / model_name
    theirs = json.loads((ref_dir / f"G1_instruction_{model_name}.json").read_text())
    assert jpath.name == f"G1_instruction_{model_name}.json" and jpath.parent.name == model_name
    assert set(ours) == set(theirs)
    for qid, ref in theirs.items():
        mine = ours[qid]
        assert list(mine) == list(ref)  # same keys, same order
        for key in ("query", "tool_names", "answer_steps", "final_step"):
            assert mine[key] == ref[key], (qid, key)
        assert {k: v for k, v in mine["is_solved"].items()} == ref["is_solved"]
    with cpath.open() as f, (ref_dir / f"G1_instruction_{model_name}.csv").open() as g:
        mine_rows, ref_rows = list(csv.reader(f, delimiter="\t")), list(csv.reader(g, delimiter="\t"))
    assert mine_rows[0] == ref_rows[0] == PASS_RATE_COLUMNS
    assert len(mine_rows) == len(ref_rows)
    # 588 of the CoT run ended without Finish: no judge call for it
    asked = [r["messages"][0]["content"] for r in judge.requests]
    assert any("Lionel Messi" in p for p in asked) == (model_name != "virtual_chatgpt_cot")


def test_preference_results_structure(tmp_path, judge_kit):
    judge = judge_kit.make({"check_answer_status": "Solved", "check_task_solvable": "Solvable",
                            "select_better_answer": 1})
    cot, dfs = _score(MODELS[0], judge), _score(MODELS[1], judge)
    wins = asyncio.run(evaluate_win_rate(dfs, cot, Judge(judge), votes=3, seed=0))
    jpath, cpath = write_preference_results(wins, dfs, cot, tmp_path, "G1_instruction", *MODELS)
    theirs = json.loads((DATA / "preference_results" / jpath.name).read_text())
    ours = json.loads(jpath.read_text())
    assert set(ours) == set(theirs)
    for qid in theirs:
        assert set(ours[qid]) == set(theirs[qid])
        assert ours[qid][MODELS[0]] + ours[qid][MODELS[1]] == 3
    assert ours["588"] == theirs["588"]  # dfs passed, cot never finished: 3 rounds to dfs, no judge
    with cpath.open() as f:
        assert next(csv.reader(f, delimiter="\t")) == PREFERENCE_COLUMNS
