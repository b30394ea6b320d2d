"""ZeRO-3 on GPU: a 1.1B Llama (TinyLlama's shape, random weights) at 8192 tokens, bf16, flash/sdpa
attention over packed rows, reporting tokens/s and MFU."""
import pytest
import torch

from toolweave.config import RunConfig
from toolweave.io import write_part
from toolweave.schemas import SFTExample
from training.packing import Example, pack, to_record
from toolweave.stages.registry import context

pytestmark = [pytest.mark.gpu, pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
            "num_key_value_heads": 4}


def test_zero3_1b_at_8192_tokens_reports_mfu(tmp_path):
    import ray

    from training import trainer

    g = torch.Generator().manual_seed(0)
    exs = []
    for i in range(64):
        n = int(torch.randint(500, 4000, (1,), generator=g))
        ids = torch.randint(10, 49000, (n,), generator=g).tolist()
        exs.append(Example(f"e{i}", ids, ids))
    cfg = RunConfig.model_validate({
        "name": "gpu", "run_dir": str(tmp_path), "run": {"show_progress": False},
        "train": {"model": "tiny", "tiny": LLAMA_1B, "num_workers": torch.cuda.device_count(), "use_gpu": True,
                  "zero_stage": 3, "bf16": True, "gradient_checkpointing": True, "max_len": 8192,
                  "max_steps": 8, "checkpoint_every": 8, "save_model": False, "lr": 1e-4}})
    write_part([to_record(r, "synthetic") for r in pack(exs, 8192)], cfg.path("sft"), SFTExample)
    ray.init(address="local", num_gpus=torch.cuda.device_count(), include_dashboard=False)
    try:
        s = trainer.run(context(cfg, "train"))
    finally:
        ray.shutdown()
    print({k: s[k] for k in ("tokens_per_s", "mfu", "packing_efficiency", "params")})
    assert s["params"] > 1.0e9 and s["step"] == 8
    assert 0.01 < s["mfu"] < 1.0
