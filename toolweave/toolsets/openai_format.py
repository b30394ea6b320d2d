"""OpenAI function/tool lists -> one Tool per file (named after the file).

Accepts `[{"type": "function", "function": {name, description, parameters}}]`, bare function dicts
`[{name, description, parameters}]`, one such dict, or `{"tools": [...]}` (a request body)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from toolweave.schemas import Function, Tool
from toolweave.toolsets.common import FileResult, make_reject, one_line
from toolweave.toolsets.naming import tool_id


def _is_function(x: Any) -> bool:
    return isinstance(x, dict) and (x.get("type") == "function" and "function" in x
                                    or isinstance(x.get("name"), str) and "parameters" in x)


def _items(doc: Any) -> list[Any] | None:
    if isinstance(doc, dict) and isinstance(doc.get("tools"), list):
        doc = doc["tools"]
    items = doc if isinstance(doc, list) else [doc]
    return items if items and all(isinstance(x, dict) for x in items) and _is_function(items[0]) else None


def is_openai_tools(doc: Any) -> bool:
    return _items(doc) is not None


def import_openai_tools(doc: Any, source: str | Path) -> FileResult:
    result = FileResult("openai")
    functions: list[Function] = []
    for i, item in enumerate(_items(doc) or []):
        fn = item.get("function") if item.get("type") == "function" else item
        where = f"tool {i}" + (f" ({fn.get('name')!r})" if isinstance(fn, dict) and fn.get("name") else "")
        if "type" in item and item["type"] != "function":
            result.rejects.append(make_reject(source, where, f"type {item['type']!r} is not 'function'", item))
            continue
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            result.rejects.append(make_reject(source, where, "no function name", item))
            continue
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            result.rejects.append(make_reject(source, where, "parameters is not a JSON Schema object", item))
            continue
        try:
            validator_for(params).check_schema(params)
        except SchemaError as e:
            at = "/".join(str(p) for p in e.absolute_path)
            result.rejects.append(make_reject(source, where, f"parameters is not a valid JSON Schema "
                                              f"(at /{at}): {one_line(e.message)}", item))
            continue
        if fn["name"] in {f.name for f in functions}:
            result.rejects.append(make_reject(source, where, f"function {fn['name']!r} appears twice", item))
            continue
        functions.append(Function(name=fn["name"], description=str(fn.get("description") or ""),
                                  parameters=params))
    if functions:
        name = Path(source).stem
        result.tools.append(Tool(id=tool_id(name), name=name, source="openai", functions=functions,
                                 extra={"source_file": str(source)}))
    return result
