"""The whole quickstart chain (configs/quickstart.yaml) with the smallest limits: every stage on a local
Ray against the session's SmolLM2 engine, ending with the evaluation of the model the chain trained
(served by a second engine). The one test of the whole chain; the stages have their own tests.
SmolLM2's episodes are verified beside the imported real ChatGPT answers; sft/ holds only episodes
that passed what `verify.require` asks, and the dataset card shows the verification table."""
import json
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from toolweave.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
DATASETS = ("catalogue", "toolsets", "instructions", "episodes", "verified_episodes", "sft", "eval_episodes", "eval")


def test_quickstart_chain_ends_with_the_report_of_the_model_it_trained(tmp_path, embedded_base_url, monkeypatch):
    from ray_jobs.cli import run_stages
    from toolweave.stages.registry import chain
    monkeypatch.chdir(ROOT)  # the config's inputs are repository paths
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", [
        f"run_dir={tmp_path}", "run.show_progress=false",
        # the session engine instead of a second SmolLM2 engine (the trained model still gets its own)
        "llm.engine=endpoints", f"llm.endpoints.default.base_url={embedded_base_url}",
        "llm.endpoints.default.model=smollm2", "llm.endpoints.default.timeout_s=600",
        "run.limit=2", "toolsets.max_tokens=128", "llm.max_tokens=128", "instructions.per_tool=1",
        "simulate.max_steps=2", "solve.max_llm_calls=4", "solve.max_tokens=128", "executor.max_tokens=128",
        "verify.votes=1", "evaluate.votes=1",
        # one unpacked row is one optimizer step of one worker: SFT data from two episodes is enough
        "sft.pack=false", "sft.max_len=1024", "train.max_len=1024", "train.num_workers=1", "train.max_steps=1",
        # a tiny Llama from config (SmolLM2's tokenizer and template) instead of SmolLM2 itself: one ZeRO-3
        # step and checkpoint of 135M parameters took ~4 of this test's minutes; fine-tuning SmolLM2 has
        # its own test (tests/training/test_model.py). head_dim 64: vLLM's CPU attention needs it
        "train.model=tiny", "train.tiny.hidden_size=128", "train.tiny.intermediate_size=256",
        "train.tiny.num_hidden_layers=2", "train.tiny.num_attention_heads=2", "train.tiny.num_key_value_heads=2",
    ])
    results = run_stages(cfg, chain(cfg.stages))

    assert list(results) == cfg.stages and cfg.stages[-1] == "evaluate"
    for name in DATASETS:
        table = pads.dataset(cfg.path(name), format="parquet").to_table()
        assert table.num_rows > 0, f"{name}/ is empty"
    assert (cfg.path("model") / "config.json").is_file() and (cfg.path("model") / "chat_template.jinja").is_file()
    assert json.loads(cfg.path("retriever", "report.json").read_text())

    # verify: every episode of the run checked (run.limit does not cut it), the imported answers too
    from toolweave.io import read_records
    from toolweave.schemas import Episode, SFTExample, VerifiedEpisode
    from toolweave.curation.verify import sft_exclusion
    checked = {v.id: v for v in read_records(cfg.path("verified_episodes"), VerifiedEpisode)[0]}
    assert set(checked) == {e.id for e in read_records(cfg.path("episodes"), Episode)[0]}
    assert results["verify"]["imported_answers"] == 15
    generated = [v for v in checked.values() if v.model == "smollm2"]
    assert generated and all(v.format_pass is not None for v in generated)
    # no unverified episode reaches sft/: each one trained on passed the checks verify.require names
    trained = {e for r in read_records(cfg.path("sft"), SFTExample)[0] for e in r.episode_ids}
    assert trained and all(e in checked and sft_exclusion(checked[e], cfg.verify) is None for e in trained)
    card = cfg.path("dataset", "README.md").read_text()
    assert card.startswith("---\n") and "## Verification" in card and "| format |" in card
    assert results["export"]["outputs"] == len({e for e in checked if sft_exclusion(checked[e], cfg.verify) is None})
    for name in ("sharegpt.jsonl", "openai_finetune.jsonl", "toolalpaca.json"):
        assert cfg.path("export", name).is_file(), name
    assert "<table id=verification>" in cfg.path("report", "report.html").read_text()  # the front page

    solved = results["evaluate"]["solve"]
    assert solved["model"] == str(cfg.path("model")) and solved["processed"] >= 1
    eps = pads.dataset(cfg.path("eval_episodes"), format="parquet").to_table(columns=["model", "split"]).to_pylist()
    assert {e["model"] for e in eps} == {"trained"} and {e["split"] for e in eps} <= {"test_inst"}
    summary = json.loads(cfg.path("report", "summary.json").read_text())
    assert summary["under_test"]["solve_with"] == "trained" and summary["under_test"]["models"] == ["trained"]
    assert "trained" in summary["title"]
    rows = [r for r in summary["rows"] if r["metric"] == "pass_rate" and r["split"] == "all"]
    assert rows and rows[0]["queries"] == len(eps)
    assert (cfg.path("report", "report.md")).read_text().startswith(f"# {summary['title']}")
    assert cfg.path("report", "pass_rate.png").is_file()
