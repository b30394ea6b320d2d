"""ToolBench's naming: tool ids and `{api}_for_{tool}` function names (64 characters at most)."""
from __future__ import annotations

import re

_NOT_NAME = re.compile(r"[^\u4e00-\u9fa5a-zA-Z0-9_]")
_RESERVED = {"from", "class", "return", "false", "true", "id", "and"}
MAX_FUNCTION_NAME = 64  # OpenAI's limit on function names


def standardize(name: str) -> str:
    s = re.sub(r"_+", "_", _NOT_NAME.sub("_", name)).lower().strip("_")
    if s and s[0].isdigit():
        s = "get_" + s
    return s


def api_name(name: str) -> str:
    s = standardize(name)
    return "is_" + s if s in _RESERVED else s


def function_name(api: str, tool: str) -> str:
    """ToolBench keeps the *last* 64 characters, so the tool suffix survives."""
    return f"{api_name(api)}_for_{standardize(tool)}"[-MAX_FUNCTION_NAME:]


def tool_id(name: str) -> str:
    return standardize(name) or "tool"
