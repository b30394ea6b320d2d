import json

import pytest

import pyarrow as pa
import pyarrow.parquet as pq

from toolweave.config import RunConfig
from toolweave.stages.evaluate import judge as judge_episodes
from toolweave.stages.registry import context
from toolweave.io import read_records, write_part
from toolweave.schemas import Episode, EvalResult, FunctionRef, Instruction, Reject


def _episode(eid, iid, method, status, final, calls=3):
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search_for_food", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "Luigi's pizza, 5th street"}]
    return Episode(id=eid, instruction_id=iid, method=method, status=status, final_answer=final, messages=msgs,
                   tools=[{"type": "function", "function": {"name": "search_for_food"}}], llm_calls=calls,
                   prompt_tokens=100, completion_tokens=20)


def _setup(tmp_path):
    cfg = RunConfig(name="t", run_dir=str(tmp_path))
    cfg.evaluate.votes = 2
    cfg.evaluate.reference = "method:cot"
    ins = [Instruction(id=f"i{k}", text=f"Find pizza number {k}", mode="I1" if k < 2 else "I2",
                       split="test_inst" if k < 2 else "test_tool",
                       relevant_functions=[FunctionRef(tool="food", function="search")]) for k in range(4)]
    write_part(ins, cfg.path("instructions"), Instruction)
    eps = [_episode(f"d{k}", f"i{k}", "dfsdt", "answered", f"Luigi's is great {k}", calls=10) for k in range(4)]
    eps += [_episode("c0", "i0", "cot", "answered", "Luigi's"), _episode("c1", "i1", "cot", "no_answer", ""),
            _episode("c2", "i2", "cot", "gave_up", ""), _episode("c3", "i3", "cot", "answered", "Mario's"),
            _episode("c3b", "i3", "cot", "answered", "again")]  # a duplicate: rejected, not scored
    write_part(eps, cfg.path("episodes"), Episode)
    bad = dict(_episode("x", "i0", "dfsdt", "answered", "y").to_row(), status="exploded")
    pq.write_table(pa.Table.from_pylist([bad], schema=Episode.ARROW), cfg.path("episodes", "part-bad.parquet"))
    return cfg


def _luigi_table(fn, req):
    text = req["messages"][0]["content"]
    if fn == "check_answer_status":
        return "Solved" if "Luigi" in text else "Unsolved"
    if fn == "check_task_solvable":
        return "Solvable"
    return 0 if "Luigi" in text.split("Answer_1:")[0] else 1


def test_evaluate_stage_end_to_end_with_scripted_judge(tmp_path, judge_kit):
    cfg = _setup(tmp_path)
    judge = judge_kit.make(_luigi_table)
    summary = judge_episodes(context(cfg, "evaluate"), {"judge": judge})
    results, bad = read_records(cfg.path("eval"), EvalResult)
    assert bad == []
    pr = {(r.method, r.query_id): r for r in results if r.metric == "pass_rate"}
    assert len(pr) == 8 and pr[("dfsdt", "i0")].label == "Pass" and pr[("cot", "i1")].label == "Fail"
    assert pr[("cot", "i3")].label == "Fail" and pr[("cot", "i0")].split == "I1 Inst"
    assert pr[("cot", "i2")].split == "I2 Tool"
    assert all(r.judge_model == "scripted-judge" and r.prompt_version.startswith("tooleval-v1+") for r in results)
    wins = {r.query_id: r.label for r in results if r.metric == "win_rate"}
    assert wins == {"i0": "Win", "i1": "Win", "i2": "Win", "i3": "Win"}  # i0: both pass, judge prefers dfsdt's
    assert summary["methods"]["dfsdt"]["pass_rate"]["pass_rate"] == 1.0
    assert summary["methods"]["cot"]["pass_rate"]["pass_rate"] == 0.25
    rejects, _ = read_records(cfg.path("eval_rejects"), Reject)
    reasons = " | ".join(r.reason for r in rejects)
    assert "second cot episode" in reasons and "episode record 'x': status" in reasons
    assert {r.stage for r in rejects} == {"evaluate"}
    assert {(r["tag"].stage, r["tag"].role) for r in judge.requests} == {("evaluate", "judge")}  # its usage line
    rep = cfg.path("report")
    for f in ("report.md", "report.html", "summary.json", "summary.parquet", "pass_rate.png", "win_rate.png",
              "cost.png"):
        assert (rep / f).is_file() and (rep / f).stat().st_size > 0, f
    md = (rep / "report.md").read_text()
    assert "## pass_rate" in md and "I2 Tool" in md and "| dfsdt |" in md
    rows = json.loads((rep / "summary.json").read_text())["rows"]
    cost = next(r for r in rows if (r["metric"], r["method"], r["split"]) == ("pass_rate", "dfsdt", "all"))
    assert cost["llm_calls_per_solved"] == 10.0 and cost["tokens_per_solved"] == 120.0
    assert (rep / "toolbench" / "pass_rate_results" / "dfsdt" / "t_dfsdt.json").is_file()

    # a rerun judges nothing again and writes no record twice
    calls = len(judge.requests)
    again = judge_episodes(context(cfg, "evaluate"), {"judge": judge})
    assert len(judge.requests) == calls and again["written"] == 0
    results2, _ = read_records(cfg.path("eval"), EvalResult)
    assert len(results2) == len(results)
    rejects2, _ = read_records(cfg.path("eval_rejects"), Reject)
    assert sorted(r.id for r in rejects2) == sorted(r.id for r in rejects), "a rerun recorded a reject twice"


def test_the_judging_takes_its_name_and_datasets_from_the_context(tmp_path, judge_kit):
    """Nothing of evaluate's is named in the core: a context of another name and other datasets (as
    the runner would hand another stage) gets its call tags, rejects, parts and report."""
    import dataclasses
    from toolweave.stage_context import Dataset, DatasetWriter
    cfg = _setup(tmp_path)
    cfg.evaluate.reference = None
    ctx = context(cfg, "evaluate")
    outputs = {"eval": DatasetWriter(Dataset("eval", EvalResult), tmp_path / "other_eval"),
               "eval_rejects": DatasetWriter(Dataset("eval_rejects", Reject), tmp_path / "other_rejects"),
               "report": DatasetWriter(Dataset("report"), tmp_path / "other_report")}
    judge = judge_kit.make(_luigi_table)
    summary = judge_episodes(dataclasses.replace(ctx, name="evaluate_again", outputs=outputs), {"judge": judge})
    assert {r["tag"].stage for r in judge.requests} == {"evaluate_again"}
    assert {p.name.split("-")[1] for p in (tmp_path / "other_eval").glob("part-*")} == {"evaluate_again"}
    rejects, _ = read_records(tmp_path / "other_rejects", Reject)
    assert rejects and {r.stage for r in rejects} == {"evaluate_again"}
    assert summary["report"] == str(tmp_path / "other_report" / "report.md") and not cfg.path("eval").exists()


def test_solvable_pass_rate_records_can_be_turned_off(tmp_path, judge_kit):
    cfg = _setup(tmp_path)
    cfg.evaluate.reference, cfg.evaluate.solvable_pass_rate, cfg.evaluate.votes = None, False, 1
    judge = judge_kit.make({"check_answer_status": "Solved", "check_task_solvable": "Solvable"})
    judge_episodes(context(cfg, "evaluate"), {"default": judge})  # no "judge" client: the default role judges
    results, _ = read_records(cfg.path("eval"), EvalResult)
    assert {r.metric for r in results} == {"pass_rate"} and len(results) == 8


class _JudgeDies(RuntimeError):
    """The judge's process dying midway (not an endpoint error the judge retries)."""


def test_a_killed_evaluate_keeps_each_finished_query_and_the_rerun_judges_only_the_rest(tmp_path, judge_kit):
    import shutil
    cfg = _setup(tmp_path / "killed")
    cfg.evaluate.concurrency = 2  # a few queries in flight when it dies, most finished or not started
    whole_cfg = _setup(tmp_path / "whole")
    whole_cfg.evaluate.concurrency = 2
    whole = judge_episodes(context(whole_cfg, "evaluate"), {"judge": judge_kit.make(_luigi_table)})

    def dying(fn, req):
        if len(dying_judge.requests) > 9:
            raise _JudgeDies("killed")
        return _luigi_table(fn, req)

    dying_judge = judge_kit.make(dying)
    with pytest.raises(_JudgeDies):
        judge_episodes(context(cfg, "evaluate"), {"judge": dying_judge})
    kept, bad = read_records(cfg.path("eval"), EvalResult)
    assert bad == [] and 0 < len(kept) < len(read_records(whole_cfg.path("eval"), EvalResult)[0])
    parts = [p for p in cfg.path("eval").iterdir() if p.name.startswith("part-evaluate-")]
    assert len(parts) >= 2  # committed query by query, not once at the end
    kept_episodes = {r.details["episode_id"] for r in kept if r.metric == "pass_rate"}

    # corrupt one committed part: it is named, moved aside, and its query judged again
    shutil.copy(parts[0], tmp_path / "saved")
    parts[0].write_bytes(parts[0].read_bytes()[:40])
    lost = {r.details.get("episode_id") for r in read_records(tmp_path / "saved", EvalResult)[0]}

    asked = []

    def recording(fn, req):
        asked.append((fn, req["tag"].episode))
        return _luigi_table(fn, req)

    again = judge_episodes(context(cfg, "evaluate"), {"judge": judge_kit.make(recording)})
    assert len(again["redone_parts"]) == 1 and parts[0].name in again["redone_parts"][0]
    rejudged = {episode for fn, episode in asked if fn != "select_better_answer"}  # pass-rate questions
    assert not rejudged & (kept_episodes - lost), "the rerun judged a query committed before"
    assert lost - {None} <= rejudged
    assert again["written"] == len(read_records(whole_cfg.path("eval"), EvalResult)[0]) - len(kept) + len(
        read_records(tmp_path / "saved", EvalResult)[0])
    final, bad = read_records(cfg.path("eval"), EvalResult)
    reference, _ = read_records(whole_cfg.path("eval"), EvalResult)
    assert bad == [] and len(final) == len(reference) == len({r.id for r in final})  # none lost, none twice
    key = lambda r: (r.id, r.label, r.score, json.dumps(r.votes, sort_keys=True))  # noqa: E731
    assert sorted(map(key, final)) == sorted(map(key, reference))
    assert again["methods"] == whole["methods"]  # the rerun's numbers are the uninterrupted run's
