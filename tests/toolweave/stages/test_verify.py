"""The verify stage (per record, in-process runner) and the export stage over a run directory:
episodes/ -> verified_episodes/ + dataset/, then export/ with only what sft_data would train on;
reruns verify only new episodes; a row that is no episode is a Reject naming it."""
import json
from pathlib import Path

import numpy as np
import pytest

from toolweave.config import RunConfig
from toolweave.converters.toolbench import answer_to_episode
from toolweave.io import read_records, write_part
from toolweave.schemas import Episode, Reject, VerifiedEpisode
from toolweave.stages import export, verify
from toolweave.stages.local import run_local
from toolweave.stages.registry import STAGES, context
from toolweave.testing.fake_llm import FakeChatModel, tool_call
from toolweave.curation.verify_export import run_export

ANSWERS = sorted((Path(__file__).parents[2] / "data/toolbench/data_example/answer").glob("G*_answer/*.json"))


@pytest.fixture(autouse=True)
def stand_in_encoder(monkeypatch):
    """The card's embedding spread with a stand-in encoder (MiniLM costs seconds a run)."""
    monkeypatch.setattr("toolweave.curation.dataset_stats._minilm", lambda: lambda texts: np.eye(len(texts)))


def judge_model():
    solved = {"tool_calls": [tool_call("check_answer_status", {"reason": "fine", "answer_status": "Solved"})]}
    return FakeChatModel(handler=lambda req: solved, model="judge-m")


def run_verify(cfg, model=None):
    return run_local(cfg, verify.STAGE, {"judge": model} if model else {})


def test_verify_sits_between_the_episode_makers_and_sft_data():
    names = list(STAGES)
    assert names.index("solve") < names.index("verify") < names.index("sft_data") < names.index("export")
    assert names.index("simulate") < names.index("verify")
    assert verify.STAGE.per_record and verify.STAGE.roles == ("judge",) and not export.STAGE.roles


def test_verify_then_export_over_a_run_directory(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), verify={"votes": 1})
    episodes = [answer_to_episode(p) for p in ANSWERS]
    write_part(episodes[:10], tmp_path / "episodes", Episode)
    judge = judge_model()
    first = run_verify(cfg, judge)
    assert first["processed"] == 10 and first["verification"]["episodes"] == 10 and first["failed"] == 0
    write_part(episodes[10:], tmp_path / "episodes", Episode)
    again = run_verify(cfg, judge)
    assert again["skipped_already_done"] == 10 and again["processed"] == 5
    verified, bad = read_records(tmp_path / "verified_episodes", VerifiedEpisode)
    assert not bad and len(verified) == 15
    n_ok = sum(v.verified for v in verified)
    assert again["dataset"]["verified"] == n_ok and (tmp_path / "dataset" / "README.md").is_file()
    assert again["verification"]["verified"] == n_ok
    # every judge call went to the semantic check of an episode that passed format and execution,
    # accounted to the verify stage, and the record names the judge's model
    assert len(judge.requests) == sum(v.semantic_pass is not None for v in verified) == n_ok
    assert {r["tag"].stage for r in judge.requests} == {"verify"}
    assert {v.judge_model for v in verified if v.semantic_pass is not None} == {"judge-m"}
    # the stage's LLM calls are the judge's, not the calls ChatGPT made solving the episodes
    assert first["llm_calls"] + again["llm_calls"] == len(judge.requests)

    summary = run_local_export(cfg)
    assert summary["outputs"] == n_ok and summary["excluded"] == 15 - n_ok
    assert summary["excluded_by_reason"]["format check failed"] == 7
    rows = [json.loads(line) for line in (tmp_path / "export/sharegpt.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(v.id for v in verified if v.verified)
    assert summary["formats"]["toolbench"] == n_ok

    # the ToolBench rule as the only setting: give_answer paths judged Solved, whatever else failed
    tb = RunConfig(run_dir=str(tmp_path), verify={"require": [], "toolbench_rule": True})
    assert run_export(context(tb, "export"))["outputs"] == n_ok  # the judge never ran where format or execution failed


def run_local_export(cfg):
    return export.STAGE.run(context(cfg, export.STAGE), runtime=None)  # a driver without roles needs nothing of the runtime


def test_unreadable_episode_rows_become_rejects_and_semantic_needs_a_judge(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "episodes").mkdir()
    row = answer_to_episode(ANSWERS[0]).to_row()
    pq.write_table(pa.Table.from_pylist([row, dict(row, id="broken", status="exploded")], schema=Episode.ARROW),
                   tmp_path / "episodes" / "part-x.parquet")
    with pytest.raises(ValueError, match="verify.semantic needs a chat model"):
        run_verify(RunConfig(run_dir=str(tmp_path)))
    summary = run_verify(RunConfig(run_dir=str(tmp_path), verify={"semantic": False, "require": ["format", "execution"]}))
    assert summary["processed"] == 2 and summary["outputs"] == 1 and summary["failed"] == 1
    [reject] = read_records(tmp_path / "verified_episodes_rejects", Reject)[0]
    assert reject.id == "broken" and "status" in reject.reason and reject.stage == "verify"


def test_imported_reference_answers_are_verified_with_the_rest_whatever_run_limit(tmp_path):
    folder = ANSWERS[0].parents[1]
    bad = tmp_path / "not_an_answer.json"
    bad.write_text("{}")
    cfg = RunConfig(run_dir=str(tmp_path / "run"), run={"limit": 2},
                    verify={"votes": 1, "import_answers": [str(folder), str(bad)]})
    summary = run_verify(cfg, judge_model())
    assert summary["imported_answers"] == 15 and summary["processed"] == 15 and summary["import_rejects"] == 1
    [reject] = read_records(tmp_path / "run" / "verified_episodes_rejects", Reject)[0]
    assert "not_an_answer.json" in reject.reason and "no answer_generation" in reject.reason
    again = run_verify(cfg, judge_model())  # the same part is rewritten: nothing new to verify
    assert again["processed"] == 0 and again["skipped_already_done"] == 15
    assert again["dataset"]["verified"] == 6
    # the checks shape the records: a rerun with other votes stops and says which setting changed
    with pytest.raises(ValueError, match="verify.votes"):
        run_verify(cfg.model_copy(update={"verify": cfg.verify.model_copy(update={"votes": 3})}), judge_model())
