"""`evaluate.tools: [given, retrieved]`: the model under test (a scripted server) solves each test query
with its own tools and with the retriever's, and the report has ToolBench's "oracle" and "retriever"
pass-rate rows side by side. The scripted model answers only when it is offered the query's own tools,
so the two rows must differ; no engine runs (the retriever is a fixed ranking)."""
import contextlib
import json
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.retrieval import dense
from toolweave.schemas import Episode, EvalResult, Instruction, Tool
from toolweave.stages import evaluate as eval_stage
from toolweave.testing.serving_locally import ServingLocally
from toolweave.stages.registry import context

G1 = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"
GOOD, BAD = "answered with the query's own tools", "nothing useful among these tools"
GIVEN_TOOL, OTHER_TOOL = "squake", "transportistas_de_argentina"  # the test queries' tool; another one


def _run_dir(tmp_path: Path) -> list[Instruction]:
    from toolweave.authoring.instructions import import_toolbench_queries
    tools, instrs, _ = import_toolbench_queries(G1, stage="instructions")
    instrs = [i.model_copy(update={"split": "test_inst" if n < 2 else "train"}) for n, i in enumerate(instrs)]
    assert all(i.tool_ids == [GIVEN_TOOL] for i in instrs[:2]) and OTHER_TOOL in {t.id for t in tools}
    io.write_part(tools, tmp_path / "toolsets", Tool, name="input")
    io.write_part(instrs, tmp_path / "instructions", Instruction, name="input")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    return instrs[:2]


class OtherToolRanking:
    """A trained retriever that always ranks another tool's API first (the given one is not retrieved)."""

    def top_k(self, query, k=5):
        return [(OTHER_TOOL, "/cities/states/:stateIsoCode", 0.9)][:k]


def _trained_retriever(tmp_path, monkeypatch):
    monkeypatch.setattr(dense.Retriever, "load", classmethod(lambda cls, d: OtherToolRanking()))
    (tmp_path / "retriever").mkdir()
    (tmp_path / "retriever" / "report.json").write_text("{}")


def _model_under_test(body):
    """Finishes at once: the right answer when it sees the query's own tool, else a useless one."""
    names = [t["function"]["name"].lower() for t in body.get("tools", [])]
    answer = GOOD if any(GIVEN_TOOL in n for n in names) else BAD
    return {"tool_calls": [{"function": {"name": "Finish", "arguments": json.dumps(
        {"return_type": "give_answer", "final_answer": answer})}}]}


JUDGE_FIELD = {"check_answer_status": "answer_status", "parse_answer_status": "answer_status",
               "check_task_solvable": "task_status"}


def _judge(body):
    """ToolEval's forced calls: solved only when the answer is the good one; every task solvable."""
    fn = body["tool_choice"]["function"]["name"]
    text = json.dumps(body["messages"])
    value = {"check_task_solvable": "Solvable"}.get(fn, "Solved" if GOOD in text else "Unsolved")
    return {"tool_calls": [{"function": {"name": fn, "arguments": json.dumps(
        {"reason": "scripted", JUDGE_FIELD[fn]: value})}}]}


def _setup(tmp_path, scripted_server, **evaluate):
    app = scripted_server(handler=_judge)  # the run's own app: the judge (and the simulated tools)
    under_test = scripted_server(handler=_model_under_test)
    served = []

    @contextlib.contextmanager
    def serve_model(cfg, source, name, max_len):
        served.append(name)
        yield under_test.base_url

    cfg = RunConfig(name="t", run_dir=str(tmp_path), run={"batch_size": 2},
                    solve={"max_steps": 3, "max_llm_calls": 6, "retrieved_k": 1},
                    evaluate={"solve_with": "trained", "votes": 2, **evaluate}, llm={
                        "engine": "serve", "endpoints": {"default": {"model": "main", "max_retries": 1}},
                        "deployments": [{"model_id": "main", "model_source": "/m", "max_model_len": 4096}]})
    runtime = ServingLocally(app.base_url, serve_model)
    return cfg, runtime, under_test, served


def test_oracle_and_retriever_rows_side_by_side(tmp_path, scripted_server, monkeypatch):
    test_queries = _run_dir(tmp_path)
    _trained_retriever(tmp_path, monkeypatch)
    cfg, runtime, under_test, served = _setup(tmp_path, scripted_server, tools=["given", "retrieved"])
    summary = eval_stage.run(context(cfg, "evaluate"), runtime)

    # one episode per query and setting, in one dataset, each saying which tools it had
    eps, bad = io.read_records(tmp_path / "eval_episodes", Episode)
    assert not bad and served == ["trained"]  # both settings solved while the model was served once
    by_setting = {(e.instruction_id, e.extra["tools"]): e for e in eps}
    assert sorted(by_setting) == sorted((i.id, t) for i in test_queries for t in ("given", "retrieved"))
    for i in test_queries:
        given, retrieved = by_setting[(i.id, "given")], by_setting[(i.id, "retrieved")]
        assert (given.id, retrieved.id) == (f"{i.id}--dfsdt", f"{i.id}--dfsdt--retrieved")
        assert (given.final_answer, retrieved.final_answer) == (GOOD, BAD)
        assert retrieved.extra["retrieved"][0]["tool"] == OTHER_TOOL and "retrieved" not in given.extra
    assert (tmp_path / "_ledger" / "eval_solve").is_dir() and (tmp_path / "_ledger" / "eval_solve_retrieved").is_dir()
    assert json.loads((tmp_path / "_ledger" / "eval_solve_retrieved" / "SETTINGS.json").read_text())[
        "solve.tools"] == "retrieved"
    assert summary["solve"]["tools"] == ["given", "retrieved"] and summary["solve"]["processed"] == 4
    assert set(summary["solve"]["by_tools"]) == {"given", "retrieved"}

    # the judged records and the summary: ToolBench's names, the rates differ as the model does
    results, _ = io.read_records(tmp_path / "eval", EvalResult)
    pass_rate = {(r.query_id, r.details["tools"]): r.label for r in results if r.metric == "pass_rate"}
    assert pass_rate == {(i.id, t): lab for i in test_queries for t, lab in (("oracle", "Pass"), ("retriever", "Fail"))}
    assert {r.method for r in results} == {"dfsdt"}
    assert summary["methods"]["dfsdt"]["pass_rate"]["pass_rate"] == 1.0
    assert summary["methods"]["dfsdt_retriever"]["pass_rate"]["pass_rate"] == 0.0
    report = json.loads((tmp_path / "report" / "summary.json").read_text())
    rows = {(r["tools"], r["split"]): r for r in report["rows"] if r["metric"] == "pass_rate"}
    assert set(rows) == {(t, s) for t in ("oracle", "retriever") for s in ("I1 Inst", "all")}
    assert (rows[("oracle", "all")]["queries"], rows[("oracle", "all")]["value"]) == (2, 1.0)
    assert (rows[("retriever", "all")]["queries"], rows[("retriever", "all")]["value"]) == (2, 0.0)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| split | dfsdt (oracle) | dfsdt (retriever) |" in md
    assert "| all | 100.0 ± 0.0 (n=2) | 0.0 ± 0.0 (n=2) |" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<th>tools</th>" in html and "<td>retriever</td>" in html and "<td>oracle</td>" in html
    toolbench_files = tmp_path / "report" / "toolbench" / "pass_rate_results"
    assert (toolbench_files / "dfsdt_retriever" / "t_dfsdt_retriever.json").is_file()

    # a rerun: every setting's queries done, nothing solved or judged again
    n = len(under_test.requests)
    again = eval_stage.run(context(cfg, "evaluate"), runtime)
    assert len(under_test.requests) == n and served == ["trained"] and again["written"] == 0
    assert again["solve"]["processed"] == 0


def test_retrieved_without_a_trained_retriever_stops_before_serving(tmp_path, scripted_server):
    _run_dir(tmp_path)
    cfg, runtime, under_test, served = _setup(tmp_path, scripted_server, tools=["given", "retrieved"])
    with pytest.raises(ValueError, match=r"evaluate.tools has 'retrieved' but no trained retriever in .*"
                                         r"run the retriever stage before evaluate"):
        eval_stage.run(context(cfg, "evaluate"), runtime)
    assert served == [] and not under_test.requests


def test_settings_default_to_solve_tools_and_shape_the_stage():
    assert eval_stage.tool_settings(RunConfig()) == ["given"]
    assert eval_stage.tool_settings(RunConfig(solve={"tools": "retrieved"})) == ["retrieved"]
    assert eval_stage.tool_settings(RunConfig(evaluate={"tools": ["retrieved", "given", "retrieved"]})) == [
        "retrieved", "given"]
    assert "evaluate.tools" in eval_stage.STAGE.shaped_by
    with pytest.raises(ValueError):
        RunConfig(evaluate={"tools": ["oracle"]})  # ToolBench's row name is not a setting


def test_toolbench_preset_evaluates_both_and_its_chain_needs_a_retriever_first(tmp_path):
    from toolweave.presets import apply_preset
    from toolweave.stages.registry import check_config
    # the chain's other inputs: SFT rows by a setting, the test instructions from an earlier run
    data = {"preset": "toolbench", "run_dir": str(tmp_path), "evaluate": {"solve_with": "trained"},
            "train": {"data": str(tmp_path / "sft")}}
    io.write_part([Instruction(id="q", text="a test query", split="test_inst")], tmp_path / "instructions", Instruction)
    cfg = RunConfig.model_validate(apply_preset({**data, "stages": ["train", "evaluate"]}))
    assert eval_stage.tool_settings(cfg) == ["given", "retrieved"]
    with pytest.raises(ValueError, match=r"no trained retriever in .*: run the retriever stage before evaluate, "
                                         r"or set evaluate.tools: \[given\]$"):
        check_config(cfg)  # said before any stage runs
    for fine in (["train", "retriever", "evaluate"], ["train"]):
        check_config(cfg.model_copy(update={"stages": fine}))
    with pytest.raises(ValueError, match="no trained retriever"):
        check_config(cfg.model_copy(update={"stages": ["evaluate", "retriever"]}))  # too late
    (tmp_path / "retriever").mkdir()
    (tmp_path / "retriever" / "report.json").write_text("{}")  # trained by an earlier run
    check_config(cfg)
    given_only = RunConfig.model_validate(apply_preset({**data, "stages": ["evaluate"], "evaluate": {
        "solve_with": "trained", "tools": ["given"]}}))
    assert eval_stage.chain_problem(given_only.model_copy(update={"run_dir": str(tmp_path / "x")})) is None
