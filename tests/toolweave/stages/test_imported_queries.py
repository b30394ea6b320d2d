"""Imported ToolBench queries join the generated instructions' dedupe and holdout, so a run whose
generation yields nothing still has a test split (the quickstart's evaluation needs one). ToolAlpaca's
evaluation files are imported as their test cases, outside both."""
import json
from collections import Counter
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.evaluation.toolalpaca import golden_answers
from toolweave.schemas import Instruction, Reject, Tool
from toolweave.stages import instructions
from toolweave.stages.local import run_local
from toolweave.testing.fake_llm import FakeChatModel

G1 = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"
EVAL_REAL = Path(__file__).parents[2] / "data" / "toolalpaca" / "eval_real.json"  # ToolAlpaca's data/


def _run(cfg, llm):
    return run_local(cfg, instructions.STAGE, {"default": llm})


def test_imported_queries_are_split_by_the_holdout_and_rerun_writes_nothing_twice(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), instructions={"style": "toolalpaca", "import_queries": [str(G1)],
                                                         "holdout": {"test_inst": 0.4}})
    llm = FakeChatModel(handler=lambda req: "no instructions here")  # generation fails for every tool
    summary = _run(cfg, llm)
    instrs, bad = io.read_records(tmp_path / "instructions", Instruction)
    assert not bad and summary["imported_instructions"] == 5 == len(instrs)
    assert Counter(i.split for i in instrs) == {"train": 3, "test_inst": 2}
    rejects, _ = io.read_records(tmp_path / "instructions_rejects", Reject)
    assert rejects and all("unusable instruction reply" in r.reason for r in rejects)

    again = _run(cfg, llm)
    assert again["processed"] == 0
    ids = [r["id"] for r in io.iter_rows(tmp_path / "instructions", columns=["id"])]
    assert sorted(ids) == sorted(i.id for i in instrs), "a rerun wrote instructions twice"


def test_a_toolbench_run_may_only_import_and_one_with_nothing_to_make_says_so(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path / "only"), instructions={"modes": [], "import_queries": [str(G1)]})
    llm = FakeChatModel(handler=lambda req: pytest.fail("nothing is generated: no LLM call"))
    summary = _run(cfg, llm)
    assert summary["imported_instructions"] == 5 and summary["api_samples"] == 0
    assert len(io.read_records(tmp_path / "only" / "instructions", Instruction)[0]) == 5

    empty = RunConfig(run_dir=str(tmp_path / "none"), instructions={"modes": []})
    with pytest.raises(ValueError, match="nothing to make: no input at .*instructions_samples"):
        _run(empty, llm)


def test_toolalpaca_eval_file_becomes_the_test_cases_the_toolalpaca_scoring_reads(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), instructions={
        "style": "toolalpaca", "import_toolalpaca_eval": [{"file": str(EVAL_REAL)}],
        "holdout": {"test_inst": 0.5, "test_tool": 0.5}})
    llm = FakeChatModel(handler=lambda req: pytest.fail("an evaluation tool gets no generated instruction"))
    summary = _run(cfg, llm)
    doc = json.loads(EVAL_REAL.read_text())
    tools, bad_tools = io.read_records(tmp_path / "toolsets", Tool)
    assert not bad_tools and sorted(t.name for t in tools) == sorted(d["Name"] for d in doc) and len(tools) == 11
    assert all(t.nl_documentation for t in tools)  # what ToolAlpaca's judge is shown
    instrs, bad = io.read_records(tmp_path / "instructions", Instruction)
    questions = {(d["Name"], n): (text, d["Golden_Answers"][n]) for d in doc for n, text in enumerate(d["Instructions"])}
    assert not bad and len(instrs) == len(questions) == summary["imported_eval_cases"] == 114
    assert {i.split for i in instrs} == {"test_tool"}  # the file's cases, not re-split by the holdout
    by_id = {t.id: t for t in tools}
    for i in instrs:
        case = i.extra["toolalpaca_eval"]
        text, gold = questions.pop((case["tool"], case["id"]))
        assert i.text == text and by_id[i.tool_ids[0]].name == case["tool"]
        assert golden_answers(i, by_id) == gold and gold
    assert not questions
    assert not io.read_records(tmp_path / "instructions_rejects", Reject)[0]

    again = _run(cfg, llm)  # the same parts rewritten: nothing twice
    assert again["imported_eval_cases"] == 114 and again["processed"] == 0
    assert len(io.read_records(tmp_path / "instructions", Instruction)[0]) == 114
    assert len(io.read_records(tmp_path / "toolsets", Tool)[0]) == 11


def test_an_eval_tool_the_run_already_holds_is_refused_and_nothing_imported(tmp_path):
    from toolweave.evaluation.toolalpaca_inputs import import_eval_file
    tools, _, _ = import_eval_file(EVAL_REAL)
    built = tools[0].model_copy(update={"extra": {}})  # as build_toolset would make it from the catalogue
    io.write_part([built], tmp_path / "toolsets", Tool, name="built")
    cfg = RunConfig(run_dir=str(tmp_path), instructions={"style": "toolalpaca",
                                                         "import_toolalpaca_eval": [{"file": str(EVAL_REAL)}]})
    with pytest.raises(ValueError, match=f"tools \\['{built.id}'\\] .*eval_real.json.*already in"):
        _run(cfg, FakeChatModel(handler=lambda req: pytest.fail("no LLM call")))
    assert not io.part_files(tmp_path / "instructions")
    assert [t.id for t in io.read_records(tmp_path / "toolsets", Tool)[0]] == [built.id]
