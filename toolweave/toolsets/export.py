"""Tools -> what models see: OpenAI tool lists (vLLM and chat templates take these), ToolBench's
`Finish` function, and ToolBench api_list entries."""
from __future__ import annotations

import re
from typing import Any, Literal

from toolweave.schemas import Function, Tool
from toolweave.toolsets.naming import MAX_FUNCTION_NAME, api_name, function_name
from toolweave.toolsets.toolbench import api_list_entries

FINISH = "Finish"
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# keywords whose value maps names to schemas: their keys are property names, not keywords
_NAMED_SCHEMAS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def clean_schema(schema: Any) -> Any:
    """Drop the `x-...` annotations the importers keep (where a parameter goes, ToolBench's own type
    names): a model needs none of them and some servers reject unknown keywords."""
    if isinstance(schema, list):
        return [clean_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k.startswith("x-"):
            continue
        if k in _NAMED_SCHEMAS and isinstance(v, dict):
            out[k] = {name: clean_schema(s) for name, s in v.items()}
        elif k in ("enum", "const", "default", "example", "examples"):
            out[k] = v  # values, not schemas
        else:
            out[k] = clean_schema(v)
    return out


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        suffix = f"_{n}"
        out, n = name[: MAX_FUNCTION_NAME - len(suffix)] + suffix, n + 1
    return out


def exported_name(fn: Function, tool: Tool, naming: str) -> str:
    if naming == "toolbench":
        return function_name(fn.name, tool.name)
    if naming == "plain":  # the function's own name when it is a valid OpenAI name
        return fn.name if _VALID_NAME.match(fn.name) else (api_name(fn.name) or "function")[:MAX_FUNCTION_NAME]
    raise ValueError(f"naming must be 'toolbench' or 'plain', got {naming!r}")


def openai_tool(name: str, fn: Function) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": fn.description,
                                             "parameters": clean_schema(fn.parameters)}}


def openai_tools(tools: list[Tool], naming: Literal["toolbench", "plain"] = "toolbench"
                 ) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    """(OpenAI tool list, exported name -> (tool id, function name)). Names are ToolBench's
    `{api}_for_{tool}` (last 64 characters) or the plain function names; a name two functions would
    share gets `_2`, `_3`, ... so every call maps back to exactly one function."""
    out: list[dict] = []
    mapping: dict[str, tuple[str, str]] = {}
    for tool in tools:
        for fn in tool.functions:
            name = _unique(exported_name(fn, tool, naming), set(mapping) | {FINISH})
            mapping[name] = (tool.id, fn.name)
            out.append(openai_tool(name, fn))
    return out, mapping


def finish_function() -> dict[str, Any]:
    """ToolBench's `Finish` tool: give the final answer, or give up and restart."""
    return {"type": "function", "function": {
        "name": FINISH,
        "description": ("If you believe that you have obtained a result that can answer the task, please call "
                        "this function to provide the final answer. Alternatively, if you recognize that you are "
                        "unable to proceed with the task in the current state, call this function to restart. "
                        "Remember: you must ALWAYS call this function at the end of your attempt, and the only "
                        "part that will be shown to the user is the final answer, so it should contain "
                        "sufficient information."),
        "parameters": {
            "type": "object",
            "properties": {
                "return_type": {"type": "string", "enum": ["give_answer", "give_up_and_restart"]},
                "final_answer": {"type": "string", "description": "The final answer you want to give the user. "
                                 "You should have this field if \"return_type\"==\"give_answer\""},
            },
            "required": ["return_type"],
        },
    }}


def toolbench_api_list(tool: Tool, shape: Literal["query", "toolenv"] = "query") -> list[dict[str, Any]]:
    """The tool's functions as ToolBench api_list entries (query-file or toolenv tool-file shape)."""
    return api_list_entries(tool, shape)
