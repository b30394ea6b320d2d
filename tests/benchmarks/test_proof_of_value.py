"""benchmarks/proof_of_value.py at toy size: its loop through the product's stages (instructions, the
base model's evaluation, solve -> verify -> sft_data -> train -> evaluate, two rounds) on the real
StableToolBench queries, in-process, with scripted models: the base model calls a function no tool
offers, the trained one the query's relevant API with valid arguments. Training itself has its own
tests (tests/training); here `train` writes the model dir the next round's generator and evaluate read."""
import importlib.util
import json
from pathlib import Path

import pytest

from toolweave.config import load_config
from toolweave.testing.serving_locally import ServingLocally
from toolweave.stages.registry import context
from training.drivers import bind
from training.tokenizers import load_tokenizer

ROOT = Path(__file__).parents[2]
spec = importlib.util.spec_from_file_location("proof_of_value", ROOT / "benchmarks" / "proof_of_value.py")
pov = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pov)


def _is_judge(body):
    return any(t["function"]["name"] == "check_answer_status" for t in body.get("tools") or [])


def _judge_or(reply):
    def handler(body):
        names = [t["function"]["name"] for t in body.get("tools") or []]
        if "check_answer_status" in names:
            return {"tool_calls": [{"function": {"name": "check_answer_status", "arguments": json.dumps(
                {"reason": "ok", "answer_status": "Solved"})}}]}
        if any(m["role"] == "tool" for m in body["messages"]) or not names:
            return {"tool_calls": [{"function": {"name": "Finish", "arguments": json.dumps(
                {"return_type": "give_answer", "final_answer": "done"})}}]} if names else "Say hello to the API."
        return reply(body, [n for n in names if n != "Finish"])
    return handler


def _relevant_call(body, names):  # the first offered function with the arguments its schema requires
    tool = next(t["function"] for t in body["tools"] if t["function"]["name"] == names[0])
    props = (tool.get("parameters") or {}).get("properties") or {}
    required = (tool.get("parameters") or {}).get("required") or []
    args = {k: (1 if props.get(k, {}).get("type") in ("integer", "number") else "x") for k in required}
    return {"tool_calls": [{"function": {"name": names[0], "arguments": json.dumps(args)}}]}


def test_the_loop_compares_base_and_trained_on_held_out_tools(tmp_path, scripted_server, monkeypatch):
    monkeypatch.chdir(ROOT)
    app = scripted_server(handler=_judge_or(lambda body, names: {"tool_calls": [
        {"function": {"name": "no_such_api", "arguments": "{not json"}}]}))
    trained = scripted_server(handler=_judge_or(_relevant_call))
    served, ran, sft_tokenizers = [], [], {}

    import contextlib

    @contextlib.contextmanager
    def serve_model(cfg, source, name, max_len):
        served.append(source)
        yield app.base_url if source == str(base) else trained.base_url

    def runner(cfg, stages):
        runtime = ServingLocally(app.base_url, serve_model)
        for stage in map(bind, stages):  # as ray_jobs.cli.run_stages: the training stages' drivers
            ran.append((Path(cfg.run_dir).name, stage.name))
            sft_tokenizers[Path(cfg.run_dir).name] = cfg.sft.tokenizer
            if stage.name == "train":
                cfg.path("model").mkdir(parents=True, exist_ok=True)
                cfg.path("model", "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
                load_tokenizer("smollm2").save_pretrained(cfg.path("model"))  # as train saves its SFT tokenizer
            else:
                stage.run(context(cfg, stage), runtime)
        return {}

    base = tmp_path / "base-model"
    base.mkdir()
    (base / "config.json").write_text("{}")
    cfg = load_config(pov.CONFIG, [*pov.PROFILES["cpu"], f"run_dir={tmp_path / 'pov'}", "run.limit=3",
                                   "run.show_progress=false", "solve.max_steps=2"])
    # the run's engine is the scripted app; evaluate's model under test goes to `serve_model`, as on Serve
    cfg = cfg.model_validate({**cfg.model_dump(), "llm": {
        "engine": "serve", "endpoints": {"default": {"model": "main", "base_url": app.base_url, "max_retries": 0}},
        "deployments": [{"model_id": "main", "model_source": "/m", "max_model_len": 4096}]}})
    results = pov.run_benchmark(cfg, rounds=2, runner=runner, base=str(base))

    assert ran[:2] == [("round1", "instructions"), ("base", "evaluate")]
    # round 1's generator (the base model) verified nothing: the ChatGPT answers of tools not held out
    # are imported, verified and made into SFT rows before train
    assert [r for r in ran if r[0] == "round1"][1:] == [("round1", s) for s in (
        "solve", "verify", "sft_data", "verify", "sft_data", "train", "evaluate")]
    first = results["rounds"][0]
    assert first["sft_rows_generated"] == 0 < first["sft_rows"] and first["chatgpt_answers"]
    assert len(first["chatgpt_answers"]) + len(first["chatgpt_answers_left_out"]) == 15
    held = pov.held_out_function_names(pov.round_config(cfg, "round1"))
    from toolweave.converters.toolbench import answer_to_episode
    assert not {t["function"]["name"] for f in first["chatgpt_answers"] for t in answer_to_episode(f).tools} & held
    # round 2's solve here still talks to the scripted base model (the run's serve endpoint): no data again
    assert [r for r in ran if r[0] == "round2"] == [("round2", s) for s in (
        "solve", "verify", "sft_data", "verify", "sft_data", "train", "evaluate")]
    assert served[0] == str(base) and served[1].endswith("round1/model") and served[2].endswith("round2/model")
    # split by tool: no held-out query's tool is a tool of the training queries
    from toolweave.io import read_records
    from toolweave.schemas import Instruction
    ins = read_records(Path(cfg.run_dir) / "round1" / "instructions", Instruction)[0]
    test_tools = {t for i in ins if i.split == "test_tool" for t in i.tool_ids}
    assert test_tools and not test_tools & {t for i in ins if i.split == "train" for t in i.tool_ids}
    # per reply: the base model's bad call, then its Finish; the trained model's relevant call, then Finish
    rows = {r["metric"]: r for r in results["rounds"][0]["rows"]}
    assert rows["well_formed"]["replies_base"] == 6 == rows["well_formed"]["replies_trained"]
    assert rows["well_formed"]["base"] == 0.5 and rows["well_formed"]["trained"] == 1.0
    assert rows["relevant_api"]["base"] == 0.0 and rows["relevant_api"]["trained"] == 0.5
    assert rows["schema_valid"]["trained"] == 1.0
    assert rows["well_formed"]["ci_low"] == 0.5 == rows["well_formed"]["ci_high"] and rows["well_formed"]["n_base"] == 3
    assert rows["calls_to_first_valid"]["n_base"] == 0 and rows["calls_to_first_valid"]["trained"] == 1.0
    # the model under test solved with evaluate.tool_choice (auto); the training episodes with required
    assert {b.get("tool_choice") for b in trained.requests if b.get("tools") and not _is_judge(b)} == {"auto"}
    assert results["rounds"][1]["generator"].endswith("round1/model")
    # round 2 trains round 1's model on ids of its tokenizer (train refuses another's)
    assert sft_tokenizers["round1"] == "smollm2" and sft_tokenizers["round2"].endswith("round1/model")
    page = (Path(cfg.run_dir) / "round2" / "report" / "report.html").read_text()
    assert "<table id=before-after-table>" in page and '<img id=before-after-plot src="data:image/png' in page
    assert (Path(cfg.run_dir) / "round2" / "report" / "before_after.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((Path(cfg.run_dir) / "proof_of_value.json").read_text())["rounds"][1]["round"] == 2
