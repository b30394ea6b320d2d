"""The evaluate stage's solve step without an engine: the model under test (a scripted server) solves
only the test splits into eval_episodes/, with its own ledger, and a rerun does nothing."""
import json
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Tool
from toolweave.stages import evaluate as eval_solve
from toolweave.stages.clients import build_clients
from toolweave.stages.local import run_local
from toolweave.testing.serving_locally import ServingLocally

G1 = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"


def _run_dir(run_dir: Path | str, test_split: int = 2) -> list[Instruction]:
    from toolweave.authoring.instructions import import_toolbench_queries
    tools, instrs, _ = import_toolbench_queries(G1, stage="instructions")
    instrs = [i.model_copy(update={"split": "test_inst" if n < test_split else "train"}) for n, i in enumerate(instrs)]
    io.write_part(tools, io.join(run_dir, "toolsets"), Tool, name="input")
    io.write_part(instrs, io.join(run_dir, "instructions"), Instruction, name="input")
    return instrs


def _cfg(tmp_path, main_url: str, **evaluate) -> RunConfig:
    return RunConfig(run_dir=str(tmp_path), llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": main_url, "model": "main", "is_vllm": False, "max_retries": 1, "timeout_s": 30}}},
        run={"batch_size": 2}, solve={"max_steps": 3, "max_llm_calls": 6},
        evaluate={"solve_with": "trained", **evaluate})


def _finish(body):  # the model under test answers at once
    return {"tool_calls": [{"function": {"name": "Finish", "arguments": json.dumps(
        {"return_type": "give_answer", "final_answer": "answered by the model under test"})}}]}


def _solve(cfg):
    return run_local(cfg, eval_solve.EVAL_SOLVE, build_clients(cfg))


def test_model_under_test_solves_only_the_test_split_into_eval_episodes(tmp_path, scripted_server):
    instrs = _run_dir(tmp_path, test_split=2)
    main = scripted_server(handler=lambda body: "the run's own engine")
    under_test = scripted_server(handler=_finish)
    cfg = _cfg(tmp_path, main.base_url)
    assert eval_solve.pending(eval_solve.solve_config(cfg, None, None)) == 2

    scfg = eval_solve.solve_config(cfg, None, under_test.base_url)
    # the assistant is the model under test; the executor and the rest stay on the run's endpoints
    assert scfg.llm.endpoint("assistant").base_url == under_test.base_url
    assert scfg.llm.endpoint("assistant").model == "trained"
    assert scfg.llm.endpoint("executor").base_url == main.base_url
    assert cfg.solve.splits == [] and cfg.llm.endpoint("assistant").base_url == main.base_url  # not mutated
    summary = _solve(scfg)

    eps, bad = io.read_records(tmp_path / "eval_episodes", Episode)
    assert not bad and summary["processed"] == 2 and summary["filtered"] == len(instrs) - 2
    assert sorted(e.instruction_id for e in eps) == sorted(i.id for i in instrs[:2])
    assert {e.split for e in eps} == {"test_inst"} and {e.model for e in eps} == {"trained"}
    assert all(e.status == "answered" and e.final_answer == "answered by the model under test" for e in eps)
    assert not (tmp_path / "episodes").exists(), "the training episodes dataset was written to"
    assert {b["model"] for b in under_test.requests} == {"trained"} and not main.requests
    assert (tmp_path / "_ledger" / "eval_solve").is_dir()  # its own ledger, not solve's
    assert (tmp_path / "eval_solve_summary.json").exists()

    # a rerun finds every test instruction done: nothing pending, no request, no second record
    n = len(under_test.requests)
    assert eval_solve.pending(eval_solve.solve_config(cfg, None, None)) == 0
    again = _solve(scfg)
    assert again["processed"] == 0 and again["skipped_already_done"] == 2 and len(under_test.requests) == n
    ids = [r["id"] for r in io.iter_rows(tmp_path / "eval_episodes", columns=["id"])]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 2


def test_engine_for_the_trained_model_fits_its_context(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), evaluate={"solve_with": "trained"}, llm={"embedded": {"max_model_len": 4096}})
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        eval_solve.engine_config(cfg)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    eng = eval_solve.engine_config(cfg)
    assert (eng.model, eng.served_name, eng.max_model_len) == (str(tmp_path / "model"), "trained", 2048)
    assert eng.tool_call_parser == cfg.llm.embedded.tool_call_parser  # same settings as the run's engine
    other = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"solve_with": "org/some-model"})})
    assert (eval_solve.engine_config(other).model, eval_solve.served_name(other)) == ("org/some-model", "some-model")
    assert eval_solve.judging_config(cfg).evaluate.episodes == "eval_episodes"


def test_no_test_split_is_a_clear_error(tmp_path):
    _run_dir(tmp_path, test_split=0)
    cfg = _cfg(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match=r"no instruction in the splits \['test_inst', 'test_tool', 'test_cat'\]"):
        eval_solve.pending(eval_solve.solve_config(cfg, None, None))


def test_roles_on_the_runs_embedded_engine_except_the_assistant(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), evaluate={"solve_with": "trained"},
                    llm={"endpoints": {"judge": {"base_url": "https://judge.example/v1", "model": "big"}}})
    scfg = eval_solve.solve_config(cfg, "http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1")
    ep = scfg.llm.endpoint
    assert (ep("executor").base_url, ep("executor").model) == ("http://127.0.0.1:1/v1", cfg.llm.embedded.served_name)
    assert (ep("assistant").base_url, ep("assistant").model) == ("http://127.0.0.1:2/v1", "trained")
    assert (ep("judge").base_url, ep("judge").model) == ("https://judge.example/v1", "big")  # its own endpoint
    assert scfg.solve.splits == ["test_inst", "test_tool", "test_cat"] and scfg.llm.engine == "endpoints"


def test_a_retrained_model_solves_the_test_split_again(tmp_path, scripted_server):
    _run_dir(tmp_path, test_split=2)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    (model / "model.safetensors").write_bytes(b"weights v1")
    under_test = scripted_server(handler=_finish)
    cfg = _cfg(tmp_path, "http://127.0.0.1:9/v1")
    scan_cfg = eval_solve.solve_config(cfg, None, None)
    assert eval_solve.retire_other_models_episodes(scan_cfg) is None  # nothing solved yet
    _solve(eval_solve.solve_config(cfg, None, under_test.base_url))
    # the record of the model lives beside the dataset: pyarrow.dataset reads a dir of Parquet only
    assert {f.suffix for f in (tmp_path / "eval_episodes").iterdir()} == {".parquet"}
    assert eval_solve.retire_other_models_episodes(scan_cfg) is None  # the same model: keep its episodes
    assert eval_solve.pending(scan_cfg) == 0

    (model / "model.safetensors").write_bytes(b"weights v2, retrained")
    moved = eval_solve.retire_other_models_episodes(scan_cfg)
    # the old model's episodes and ledger are kept aside, and this model solves everything again
    assert moved and moved.startswith("eval_episodes.replaced-")
    assert len(list(io.iter_rows(tmp_path / moved))) == 2
    assert not (tmp_path / "eval_episodes").exists() and eval_solve.pending(scan_cfg) == 2
    assert json.loads((tmp_path / eval_solve.MODEL_FILE).read_text())["files"][
        "model.safetensors"][0] == len(b"weights v2, retrained")


@pytest.fixture(params=["local", "s3"])
def run_dir(request, tmp_path):
    """The run dir on a local path, or in an S3-compatible store (moto's server on 127.0.0.1)."""
    if request.param == "local":
        yield str(tmp_path)
        return
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root:
        yield f"{root}/runs/{tmp_path.name}"


def test_with_engine_serve_the_model_under_test_gets_its_own_app_and_the_rest_stay_on_the_runs(
        run_dir, tmp_path, scripted_server, monkeypatch):
    """`llm.engine: serve` on a runner that serves models (the Ray runtime): the model under test is
    served through `runtime.serve_model` (its own app; here a scripted server), not a second
    embedded engine; every other role is on the run's app route. A model in an object store goes to
    Serve as its URI (each replica's node downloads it), its context read from the bucket: nothing
    is fetched to this machine."""
    import contextlib

    _run_dir(run_dir, test_split=2)
    io.write_text(io.join(run_dir, "model", "config.json"), json.dumps({"max_position_embeddings": 2048}))
    io.write_bytes(io.join(run_dir, "model", "model.safetensors"), b"weights")

    def fetched(*args):
        raise AssertionError(f"the model was fetched to this machine: {args}")
    monkeypatch.setattr(io, "download_dir", fetched)
    app = scripted_server(handler=lambda body: "the run's app")
    under_test = scripted_server(handler=_finish)
    served = []

    @contextlib.contextmanager
    def serve_model(cfg, source, name, max_len):
        served.append((source, name, max_len))
        yield under_test.base_url
        served.append("removed")

    cfg = RunConfig(run_dir=run_dir, run={"batch_size": 2}, solve={"max_steps": 3, "max_llm_calls": 6},
                    evaluate={"solve_with": "trained"}, llm={
                        "engine": "serve", "endpoints": {"default": {"model": "main", "max_retries": 1}},
                        "deployments": [{"model_id": "main", "model_source": "/m", "max_model_len": 4096}]})
    runtime = ServingLocally(app.base_url, serve_model)
    scfg = eval_solve.solve_config(cfg, app.base_url, under_test.base_url)
    assert scfg.llm.endpoint("executor").base_url == app.base_url  # resolved to the app's route
    assert scfg.llm.endpoint("judge").model == "main" and scfg.llm.endpoint("assistant").model == "trained"
    summary = eval_solve.solve_with_model_under_test(cfg, runtime)
    # deployed under an id naming the stored model's version (Serve LLM's bucket mirror names each
    # node's copy after it: test_serve's own_cache_dir test), a local model as "trained"
    name = eval_solve.served_model_id(cfg)
    assert name == "trained" if run_dir == str(tmp_path) else name.startswith("trained-")
    assert served == [(io.join(run_dir, "model"), name, 2048), "removed"]  # capped at the model's context
    assert summary["processed"] == 2 and summary["served_on"] == "serve" and summary["served_name"] == name
    assert {b["model"] for b in under_test.requests} == {name} and not app.requests
    # the model is known by its files where they are (a retrain changes them)
    marker = json.loads(io.read_text(io.join(run_dir, eval_solve.MODEL_FILE)))
    assert marker["source"] == io.join(run_dir, "model") and marker["files"]["model.safetensors"][0] == len(b"weights")


def test_the_model_under_test_is_asked_with_evaluate_tool_choice(tmp_path, scripted_server):
    _run_dir(tmp_path, test_split=1)
    under_test = scripted_server(handler=_finish)
    cfg = _cfg(tmp_path, "http://127.0.0.1:1/v1", tool_choice="auto")
    assert eval_solve.solve_config(cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(
        update={"tool_choice": None})}), None, None).solve.tool_choice == "required"  # null: solve.tool_choice's
    scfg = eval_solve.solve_config(cfg, None, under_test.base_url)
    assert scfg.solve.tool_choice == "auto" and cfg.solve.tool_choice == "required"  # the run's own solve keeps it
    _solve(scfg)
    assert under_test.requests and {b.get("tool_choice") for b in under_test.requests} == {"auto"}
