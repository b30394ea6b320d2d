"""The DeepSpeed config a run trains with, generated from `train` and merged with `train.ds_config`.

Sizes are explicit numbers: DeepSpeed's "auto" values are filled in only by the Hugging Face Trainer.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from toolweave.config import TrainConfig


def bf16_enabled(train: TrainConfig) -> bool:
    if train.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(train.bf16)


def uses_deepspeed_optimizer(train: TrainConfig) -> bool:
    """DeepSpeed's own Adam (fused on GPU, CPUAdam when offloading) needs compiled ops; on CPU a torch
    AdamW avoids 40 s JIT builds."""
    if train.optimizer == "auto":
        return torch.cuda.is_available()
    return train.optimizer == "deepspeed"


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def deepspeed_config(train: TrainConfig, world_size: int) -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": train.zero_stage, "overlap_comm": torch.cuda.is_available(),
                            "contiguous_gradients": True}
    if train.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if train.offload_params:
        if train.zero_stage != 3:
            raise ValueError("train.offload_params needs zero_stage 3")
        zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if train.zero_stage == 3:
        # the final model is gathered to rank 0 in 16/32-bit for save_pretrained
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "train_batch_size": train.micro_batch_size * train.grad_accum * world_size,
        "gradient_clipping": 1.0,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16_enabled(train)},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if uses_deepspeed_optimizer(train):
        cfg["optimizer"] = {"type": "AdamW", "params": {"lr": train.lr, "weight_decay": train.weight_decay,
                                                        "betas": [0.9, 0.999], "eps": 1e-8}}
    elif train.offload_optimizer:
        cfg["zero_force_ds_cpu_optimizer"] = False  # a torch optimizer on offloaded states (CPU runs)
    return _merge(cfg, train.ds_config)
