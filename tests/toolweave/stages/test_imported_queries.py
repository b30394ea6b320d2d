"""Imported ToolBench queries join the generated instructions' dedupe and holdout, so a run whose
generation yields nothing still has a test split (the quickstart's evaluation needs one)."""
from collections import Counter
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction, Reject
from toolweave.stages import instructions
from toolweave.stages.local import run_local
from toolweave.testing.fake_llm import FakeChatModel

G1 = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"


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
