"""The chat template used where a model's own cannot render tools, and the choice of it.

Both sides use it: training installs it in the SFT tokenizer (saved with the model), and the engines
(vLLM's server, Serve LLM) are given it for a model whose own template drops a request's `tools`, so a
DFSDT request's function schemas reach the prompt. Reads local files only (no transformers import).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from toolweave import safe_read

ChatTemplateMode = Literal["auto", "model", "fallback"]
TEMPLATE_FILE_MAX_BYTES = 16 * 1024 * 1024  # tokenizer_config.json of a big vocabulary is a few MB

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


def renders_tools(template: str | dict | None) -> bool:
    """Whether a chat template renders the tool list and assistant tool calls (a dict: HF's named templates)."""
    if isinstance(template, dict):
        template = template.get("tool_use") or template.get("default") or ""
    return bool(template) and "tools" in template and "tool_calls" in template


def model_chat_template(model: str) -> str | dict | None:
    """The chat template a model dir ships (`chat_template.jinja`, else tokenizer_config.json), or of a
    hub id already in the local HF cache; None when there is none or it cannot be read here.
    A template file there that is no regular file (a FIFO, a device) or is too big raises
    safe_read.UnreadableFile naming it."""
    if "://" in model:  # an object store: the replica's node reads it, not this process
        return None
    path = Path(model).expanduser()
    if not path.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache
            found = [try_to_load_from_cache(model, name) for name in ("chat_template.jinja", "tokenizer_config.json")]
        except Exception:  # not a hub id either (huggingface_hub validates the name)
            return None
        jinja, config = (f if isinstance(f, str) else None for f in found)
    else:
        jinja, config = path / "chat_template.jinja", path / "tokenizer_config.json"
    if jinja and os.path.exists(jinja):  # is_file() would pass a FIFO over silently
        return safe_read.read_text(jinja, max_bytes=TEMPLATE_FILE_MAX_BYTES)
    if config and os.path.exists(config):
        try:
            return json.loads(safe_read.read_text(config, max_bytes=TEMPLATE_FILE_MAX_BYTES)).get("chat_template")
        except (ValueError, AttributeError):  # not JSON, not a map: no template to be read here
            return None
    return None


def serving_chat_template(mode: ChatTemplateMode, model: str) -> str | None:
    """The template to give an engine serving `model`, or None for the model's own. `auto` gives the
    fallback only where the model's template is known and drops tools (a model this cannot read keeps its own)."""
    if mode == "fallback":
        return FALLBACK_CHAT_TEMPLATE
    if mode == "model":
        return None
    template = model_chat_template(model)
    return FALLBACK_CHAT_TEMPLATE if template is not None and not renders_tools(template) else None
