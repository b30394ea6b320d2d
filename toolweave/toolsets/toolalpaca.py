"""ToolAlpaca tool files (`eval_simulated.json` style): a list of tools whose `Documentation` is an
OpenAPI 3 document held in a string. Functions come from that document, named as the tool's
`Function_Projection` names them; the other ToolAlpaca fields are kept in `extra`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolweave.toolsets.common import FileResult, make_reject
from toolweave.toolsets.openapi import OpenAPIError, openapi_tool

EXTRA_FIELDS = ("Function_Projection", "Golden_Answers", "Instructions", "Function_Description",
                "Introduction", "Functions", "Link")
REQUIRED_FIELDS = ("Name", "Documentation")


def is_toolalpaca(doc: Any) -> bool:
    items = doc if isinstance(doc, list) else [doc]
    return bool(items) and all(isinstance(x, dict) for x in items) and \
        all(k in items[0] for k in REQUIRED_FIELDS)


def _projection(raw: Any) -> dict[tuple[str, str], str]:
    """{function: [path, method]} -> {(path, method): function}; raises ValueError if malformed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("Function_Projection is not an object")
    out = {}
    for fn, target in raw.items():
        if not (isinstance(target, list | tuple) and len(target) == 2 and all(isinstance(t, str) for t in target)):
            raise ValueError(f"Function_Projection[{fn!r}] is not [path, method]")
        out[(target[0], target[1].lower())] = fn
    return out


def import_toolalpaca(doc: Any, source: str | Path) -> FileResult:
    result = FileResult("toolalpaca")
    items = doc if isinstance(doc, list) else [doc]
    for i, item in enumerate(items):
        where = f"tool {i}" + (f" ({item.get('Name')!r})" if isinstance(item, dict) and item.get("Name") else "")
        if not isinstance(item, dict):
            result.rejects.append(make_reject(source, where, f"expected an object, got {type(item).__name__}", item))
            continue
        missing = [k for k in REQUIRED_FIELDS if not item.get(k)]
        if missing:
            result.rejects.append(make_reject(source, where, f"missing {', '.join(missing)}", item))
            continue
        try:
            documentation = item["Documentation"]
            openapi = json.loads(documentation) if isinstance(documentation, str) else documentation
        except json.JSONDecodeError as e:
            result.rejects.append(make_reject(source, where, f"Documentation is not JSON (line {e.lineno} "
                                              f"column {e.colno}: {e.msg})", item))
            continue
        except (ValueError, RecursionError) as e:  # 4,300+ digit integers, nesting too deep to parse
            result.rejects.append(make_reject(source, where, f"Documentation cannot be parsed: "
                                              f"{type(e).__name__}: {str(e)[:200]}", item))
            continue
        try:
            projection = _projection(item.get("Function_Projection"))
            tool = openapi_tool(openapi, name=str(item["Name"]), source="toolalpaca", projection=projection,
                                lenient=True)
        except (OpenAPIError, ValueError) as e:
            result.rejects.append(make_reject(source, where, f"Documentation: {e}" if isinstance(e, OpenAPIError)
                                              else str(e), item))
            continue
        names = {f.name for f in tool.functions}
        lost = [fn for fn in projection.values() if fn not in names]
        if lost:  # golden answers would call functions the document lacks
            result.rejects.append(make_reject(source, where, f"Function_Projection names operations the "
                                              f"Documentation lacks: {', '.join(lost)}", item))
            continue
        tool.description = str(item.get("Description") or tool.description)
        tool.category = str(item.get("Category") or "")
        tool.nl_documentation = str(item.get("NLDocumentation") or "")
        tool.extra = {k: item[k] for k in EXTRA_FIELDS if k in item} | {"source_file": str(source)} | \
            ({"repairs": tool.extra["repairs"]} if "repairs" in tool.extra else {})
        result.tools.append(tool)
    return result
