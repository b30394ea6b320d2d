"""MCP `tools/list` results -> one Tool (one server) with a Function per MCP tool.

Accepts the result object (`{"tools": [{name, description, inputSchema, ...}]}`), the whole JSON-RPC
response (`{"jsonrpc": "2.0", "result": {"tools": [...]}}`) or the bare list. `inputSchema` becomes
the function's parameters and `outputSchema` its response schema. A live server is listed with
`list_server_tools`, which records the server on the tool so the MCP executor can call it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from toolweave.config import MCPServerConfig, MCPSettings
from toolweave.schemas import Function, Tool
from toolweave.toolsets.common import FileResult, make_reject, one_line
from toolweave.toolsets.naming import tool_id


def _items(doc: Any) -> list[Any] | None:
    if isinstance(doc, dict) and doc.get("jsonrpc") and isinstance(doc.get("result"), dict):
        doc = doc["result"]
    if isinstance(doc, dict) and isinstance(doc.get("tools"), list):
        doc = doc["tools"]
    if isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc) \
            and any("inputSchema" in x for x in doc) and not any("parameters" in x for x in doc):
        return doc
    return None


def is_mcp_tools(doc: Any) -> bool:
    return _items(doc) is not None


def import_mcp_tools(doc: Any, source: str | Path, *, name: str | None = None,
                     server: MCPServerConfig | None = None, description: str = "") -> FileResult:
    """One Tool named `name` (else after the file); each bad entry becomes a Reject naming it."""
    result = FileResult("mcp")
    functions: list[Function] = []
    for i, item in enumerate(_items(doc) or []):
        fname = item.get("name")
        where = f"tool {i}" + (f" ({fname!r})" if isinstance(fname, str) and fname else "")
        if not isinstance(fname, str) or not fname.strip():
            result.rejects.append(make_reject(source, where, "no tool name", item))
            continue
        schema = item.get("inputSchema")
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            result.rejects.append(make_reject(source, where, "inputSchema is not a JSON Schema object", item))
            continue
        problem = _schema_problem(schema) or _schema_problem(item.get("outputSchema"))
        if problem:
            result.rejects.append(make_reject(source, where, problem, item))
            continue
        if fname in {f.name for f in functions}:
            result.rejects.append(make_reject(source, where, f"tool {fname!r} appears twice", item))
            continue
        functions.append(Function(name=fname, description=str(item.get("description") or item.get("title") or ""),
                                  parameters={"type": "object", **schema},
                                  response_schema=item.get("outputSchema")))
    if functions:
        tool_name = name or Path(source).stem
        extra: dict[str, Any] = {"source_file": str(source)}
        if server is not None:  # the server's connection, never its environment's values
            extra["mcp_server"] = server.model_dump(mode="json")
        annotations = {str(it["name"]): it["annotations"] for it in _items(doc) or []
                       if isinstance(it.get("annotations"), dict) and isinstance(it.get("name"), str)}
        if annotations:
            extra["mcp_annotations"] = annotations
        result.tools.append(Tool(id=tool_id(tool_name), name=tool_name, source="mcp", description=description,
                                 functions=functions, extra=extra))
    return result


def _schema_problem(schema: Any) -> str | None:
    if schema is None:
        return None
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as e:
        at = "/".join(str(p) for p in e.absolute_path)
        return f"not a valid JSON Schema (at /{at}): {one_line(e.message)}"
    return None


async def list_server_tools(server: MCPServerConfig, settings: MCPSettings, *, name: str | None = None
                            ) -> FileResult:
    """Connect to a live server (allow-lists apply), list its tools and import them; the server is
    recorded on the tool (`extra["mcp_server"]`). Raises ConnectionError / MCPPolicyError when it
    cannot be reached or is not allowed."""
    from toolweave.executors.mcp import MCPConnection

    conn = MCPConnection(server, settings)
    await conn.start()
    try:
        listed = await conn.list_tools()
        info = conn.client.server_info
        instructions = conn.client.instructions or ""
    finally:
        await conn.close()
    source = f"mcp:{conn.describe()}"
    return import_mcp_tools({"tools": listed}, source, name=name or (info.name if info else None) or "mcp",
                            server=server, description=instructions)
