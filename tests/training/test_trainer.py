"""End to end on a local Ray: real ToolBench episodes → SFT rows → ZeRO-3 on 2 Ray Train workers, a failure
injected after a checkpoint, resumed from it, final model loaded and generating with transformers."""
import json

import pytest

from toolweave.config import RunConfig
from toolweave.io import write_part
from toolweave.schemas import Episode
from toolweave.stages.registry import context

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from ray_jobs.runtime import ray_session
    with ray_session(RunConfig(ray={"num_cpus": 8, "object_store_memory": 200_000_000})):
        yield ray


def _cfg(tmp_path, **train):
    return RunConfig.model_validate({
        "name": "t", "run_dir": str(tmp_path), "run": {"show_progress": False},
        "sft": {"max_len": 2048, "truncate": True}, "verify": {"require": []},  # no verify stage here
        "train": {"max_len": 2048, "epochs": 3, "lr": 3e-3, "warmup_ratio": 0.0, "checkpoint_every": 2,
                  "num_cpus_per_worker": 0.5, "zero_stage": 3, **train}})


def test_zero3_on_two_workers_resumes_after_failure_and_saves_a_loadable_model(tmp_path, ray_local,
                                                                                toolbench_episodes):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training import sft_data, trainer

    cfg = _cfg(tmp_path, fail_at_step=2, max_failures=1)
    write_part(toolbench_episodes, cfg.path("episodes"), Episode)
    s = sft_data.run(context(cfg, "sft_data"))
    assert s["rows"] >= 4

    summary = trainer.run(context(cfg, "train"))
    assert summary["step"] == summary["total_steps"] >= 4
    log = [json.loads(l) for l in (cfg.path("train", "t-sft", "metrics.jsonl")).read_text().splitlines()]
    steps = [m["step"] for m in log]
    # the first attempt reached step 2, checkpointed and died; the restarted group went on from 3, not from 1
    assert steps[:3] == [1, 2, 3] and steps.count(1) == 1 and steps == sorted(set(steps))
    assert log[2]["resumed_from"] == 2 and summary["resumed_from"] == 2
    assert cfg.path("train", "t-sft", ".injected_failure").exists()
    assert log[-1]["loss"] < log[0]["loss"] - 0.5
    assert summary["checkpoint"] and (tmp_path / "train").exists()

    model = AutoModelForCausalLM.from_pretrained(cfg.path("model"))
    tok = AutoTokenizer.from_pretrained(cfg.path("model"))
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=toolbench_episodes[0].tools,
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5
    assert torch.isfinite(model(**prompt).logits).all()
