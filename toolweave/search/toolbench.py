"""ToolBench's side of the solving environment, reproduced for the `toolbench` preset: the function
JSON its RapidAPI wrapper shows the model, its system prompt's tool list, its `Finish` check and its
observation text (`toolbench/inference/Downstream_tasks/rapidapi.py` and `inference/server.py` of
OpenBMB/ToolBench). Proven equal on recorded runs of that code: tests/toolweave/search/test_toolbench_parity.py.
"""
from __future__ import annotations

import json
from typing import Any

from toolweave.schemas import Function, Tool
from toolweave.toolsets.naming import api_name, function_name, standardize
from toolweave.toolsets.toolbench import TEMPLATE_X, parameter_lists

DESCRIPTION_LIMIT = 256  # rapidapi.py: function and parameter descriptions are cut here
TOOL_DESCRIPTION_LIMIT = 512  # rapidapi.py: a tool's line in the system prompt
_TYPES = {"NUMBER": "integer", "STRING": "string", "BOOLEAN": "boolean"}  # anything else is "string"
# the server's error texts -> ToolBench's observation codes (rapidapi.py); any other text is 0
ERROR_CODES = {"API not working error...": 6, "Unauthorized error...": 7, "Unsubscribed error...": 8,
               "Too many requests error...": 9, "Rate limit per minute error...": 10, "Message error...": 11}
TOOL_INPUT_ERROR = "Tool input parse error...\n"  # server.py, for a tool input that is not JSON


def standard_tool_name(tool: Tool) -> str:
    return standardize(tool.name)


def _parameter(p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    schema: dict[str, Any] = {"type": _TYPES.get(p.get("type"), "string"),  # type: ignore[arg-type]
                              "description": str(p.get("description", ""))[:DESCRIPTION_LIMIT]}
    default = p.get("default", "")
    if len(str(default)) != 0:
        schema["example_value"] = default
    return api_name(p["name"]), schema


def toolbench_function(tool: Tool, fn: Function) -> dict[str, Any]:
    """One API as rapidapi.py's `api_json_to_openai_json` renders it: the subfunction sentence, the
    description cut at 256 characters with the API's own name replaced by the function's, ToolBench's
    three parameter types, `example_value` from the default, and a `required` / `optional` split.
    As there, optional parameters are listed only when the API has a required one (rapidapi.py reads
    them inside its `if required_parameters` block)."""
    std = standard_tool_name(tool)
    name = function_name(fn.name, tool.name)
    description = f"This is the subfunction for tool \"{std}\", you can use this tool."
    if fn.description.strip() != "":
        cut = fn.description.strip().replace(fn.name, name)[:DESCRIPTION_LIMIT]
        description += f"The description of this function is: \"{cut}\""
    params: dict[str, Any] = {"type": "object", "properties": {}, "required": [], "optional": []}
    required, optional = parameter_lists(fn.parameters)
    for group, plist in (("required", required), ("optional", optional if required else [])):
        for p in plist:
            pname, schema = _parameter(p)
            params["properties"][pname] = schema
            params[group].append(pname)
    return {"name": name, "description": description, "parameters": params}


def tool_lines(tools: list[Tool]) -> str:
    """The system prompt's numbered tool list (one line per standard tool name, first seen first)."""
    seen: dict[str, str] = {}
    for t in tools:
        seen[standard_tool_name(t)] = t.description
    lines = []
    for k, (std, des) in enumerate(seen.items(), 1):
        stripped = des[:TOOL_DESCRIPTION_LIMIT].replace("\n", "").strip() or "None"
        lines.append(f"{k}.{std}: {stripped}\n")
    return "".join(lines)


def parse_finish(arguments: str) -> dict[str, Any]:
    """rapidapi.py's reading of `Finish` arguments: JSON (control characters allowed), else the
    return_type / final_answer found by their quoted keys in the text."""
    try:
        data = json.loads(arguments, strict=False)
        return data if isinstance(data, dict) else {}
    except ValueError:
        pass
    data = {}
    key = '"return_type": "'
    if key in arguments:
        if '"return_type": "give_answer"' in arguments:
            data["return_type"] = "give_answer"
        elif '"return_type": "give_up_and_restart"' in arguments:
            data["return_type"] = "give_up_and_restart"
        else:
            data["return_type"] = arguments[arguments.find(key) + len(key):arguments.find('",')]
    answer_key = '"final_answer": "'
    if answer_key in arguments:
        data["final_answer"] = arguments[arguments.find(answer_key) + len(answer_key):]
    return data


def parse_tool_input(arguments: str) -> dict[str, Any] | None:
    """server.py: the tool input is JSON (strict), "" means no arguments; None when it is neither."""
    if arguments == "":
        return {}
    try:
        data = json.loads(arguments)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def observation(error: str, response: str) -> str:
    """What the client shows: the server's `{"error", "response"}` as `json.dumps` writes it."""
    return json.dumps({"error": error, "response": response})


def _as_template(schema: Any) -> Any:
    """A JSON Schema as ToolBench's example-shaped response schema (keys, lists of one element)."""
    if not isinstance(schema, dict):
        return {}
    if schema.get("type") == "array" or "items" in schema:
        return [_as_template(schema.get("items"))]
    if "properties" in schema:
        return {k: _as_template(v) for k, v in schema["properties"].items()}
    return schema.get("type", "")


def _shorten(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """server.py's dict_shorten: drop keys the schema lacks, recursing into objects and lists of objects."""
    for key, item in list(value.items()):
        if key not in schema:
            del value[key]
        elif isinstance(item, dict) and isinstance(schema[key], dict):
            _shorten(item, schema[key])
        elif isinstance(item, list) and item and isinstance(item[0], dict) and isinstance(schema[key], list) \
                and schema[key] and isinstance(schema[key][0], dict):
            for element in item:
                if isinstance(element, dict):
                    _shorten(element, schema[key][0])
    return value


def filter_response(body: str, response_schema: dict[str, Any] | None) -> str:
    """server.py's `filter` response mode: a JSON object response keeps only the keys of the API's
    response schema and is written with Python `str()`, as the server writes it; any other response
    (or an API without a schema) passes unchanged."""
    if not response_schema:
        return body
    try:
        value = json.loads(body)
    except ValueError:
        return body
    schema = response_schema[TEMPLATE_X] if TEMPLATE_X in response_schema else _as_template(response_schema)
    if not isinstance(value, dict) or not isinstance(schema, dict) or not schema:
        return body
    return str(_shorten(value, schema))
