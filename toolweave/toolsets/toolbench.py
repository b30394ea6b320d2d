"""ToolBench / RapidAPI tools: the `api_list` entries of query files, the `toolenv/tools/<Category>/<tool>.json`
tool files and the `toolenv/response_examples/<Category>/<tool>.json` schemas.

Query files list, per query, only the APIs that query may use; a tool's functions are the union over
all the records of one import (same API twice: merged when the interface agrees, rejected when not).
A ToolBench tool is keyed by (category, name): when one name lives in several categories (StableToolBench's
"👋 Demo Project" is in three), each of those tools gets the id `tool_id("<name> <category>")`.

Parameters become JSON Schema; ToolBench's type names map to JSON types, `x-toolbench-type` keeps the
original when it does not follow from the JSON type, so `api_list_entries` gives the entries back.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from toolweave.schemas import Function, Reject, Tool
from toolweave.toolsets.common import FileResult, make_reject
from toolweave.toolsets.naming import api_name, tool_id

SOURCE = "toolbench"
REF_KEYS = {"category_name", "tool_name", "api_name"}  # an entry with only these names a doc elsewhere
PARAM_KEYS = ("name", "type", "description", "default")
TYPE_X = "x-toolbench-type"
TEMPLATE_X = "x-toolbench-template"
DUPLICATES_X = "x-toolbench-duplicates"  # repeated parameter names, kept for the way back

_JSON_TYPE = {"STRING": "string", "NUMBER": "number", "INTEGER": "integer", "INT": "integer",
              "FLOAT": "number", "BOOLEAN": "boolean", "BOOL": "boolean", "ARRAY": "array", "LIST": "array",
              "OBJECT": "object", "DICT": "object", "JSON": "object", "ENUM": "string"}
_BACK = {"string": "STRING", "number": "NUMBER", "integer": "NUMBER", "boolean": "BOOLEAN",
         "array": "ARRAY", "object": "OBJECT"}
_FORMATS = {"DATE": ("date", "DATE (YYYY-MM-DD)"), "TIME": ("time", "TIME (24-hour HH:MM)")}
_TEMPLATE_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                   "NoneType": "null", "None": "null", "null": "null", "list": "array", "dict": "object"}


# --- types and schemas -----------------------------------------------------------------------

def type_schema(tb_type: Any) -> dict[str, Any]:
    """ToolBench parameter type -> JSON Schema (`x-toolbench-type` when it cannot be inferred back)."""
    raw = str(tb_type) if tb_type is not None else ""
    up = raw.strip().upper()
    schema: dict[str, Any]
    if up in _JSON_TYPE:
        schema = {"type": _JSON_TYPE[up]}
    elif up.split(" ")[0] in _FORMATS:
        fmt = _FORMATS[up.split(" ")[0]][0]
        schema = {"type": "string", "format": fmt}
    else:  # GEOPOINT, FILE, CREDENTIALS, ...: passed as text
        schema = {"type": "string"}
    if toolbench_type(schema) != raw:
        schema[TYPE_X] = tb_type
    return schema


def toolbench_type(schema: dict[str, Any]) -> Any:
    if TYPE_X in schema:
        return schema[TYPE_X]
    t = schema.get("type")
    t = t[0] if isinstance(t, list) and t else t
    if t == "string" and schema.get("format") in ("date", "time"):
        return next(v[1] for v in _FORMATS.values() if v[0] == schema["format"])
    return _BACK.get(t, "STRING")


def template_schema(template: Any) -> dict[str, Any]:
    """ToolBench's response template (`{"name": "str", "items": [{"id": "int", "_list_length": 3}]}`)
    -> JSON Schema."""
    if isinstance(template, dict):
        props = {k: template_schema(v) for k, v in template.items() if k != "_list_length"}
        return {"type": "object", "properties": props}
    if isinstance(template, list):
        return {"type": "array", "items": template_schema(template[0])} if template else {"type": "array"}
    if isinstance(template, str):
        if template in _TEMPLATE_TYPES:
            return {"type": _TEMPLATE_TYPES[template]}
        if template.startswith("list of "):  # "list of str with length 8"
            inner = template.removeprefix("list of ").split(" ")[0]
            return {"type": "array", "items": template_schema(inner)}
        return {"description": template}
    return {}


def response_schema_from_template(template: Any) -> dict[str, Any]:
    return {**template_schema(template), TEMPLATE_X: template}


def parameters_schema(required: list, optional: list) -> dict[str, Any]:
    """ToolBench required/optional parameter lists -> one JSON-Schema object. Raises ValueError."""
    props: dict[str, Any] = {}
    req: list[str] = []
    dups: list[dict[str, Any]] = []
    for group, params in (("required_parameters", required), ("optional_parameters", optional)):
        if not isinstance(params, list):
            raise ValueError(f"{group} is not a list")
        for i, p in enumerate(params):
            if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
                raise ValueError(f"{group}[{i}] has no name")
            if p["name"] in props:  # real ToolBench data repeats names; the first one is the argument
                dups.append({"group": group, "index": i, "parameter": p})
                continue
            schema = type_schema(p.get("type"))
            if "type" not in p:
                schema[TYPE_X] = None
            for k in ("description", "default"):
                if k in p:
                    schema[k] = p[k]
            rest = {k: v for k, v in p.items() if k not in PARAM_KEYS}
            if rest:
                schema["x-toolbench-extra"] = rest
            props[p["name"]] = schema
            if group == "required_parameters":
                req.append(p["name"])
    out: dict[str, Any] = {"type": "object", "properties": props}
    if req:
        out["required"] = req
    if dups:
        out[DUPLICATES_X] = dups
    return out


def parameter_lists(parameters: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """JSON-Schema object -> ToolBench (required_parameters, optional_parameters)."""
    required = set(parameters.get("required") or [])
    req, opt = [], []
    for name, schema in (parameters.get("properties") or {}).items():
        schema = schema if isinstance(schema, dict) else {}
        p: dict[str, Any] = {"name": name}
        t = toolbench_type(schema)
        if not (TYPE_X in schema and schema[TYPE_X] is None):
            p["type"] = t
        for k in ("description", "default"):
            if k in schema:
                p[k] = schema[k]
        p.update(schema.get("x-toolbench-extra") or {})
        (req if name in required else opt).append(p)
    for d in parameters.get(DUPLICATES_X) or []:
        (req if d["group"] == "required_parameters" else opt).insert(d["index"], d["parameter"])
    return req, opt


# --- records ---------------------------------------------------------------------------------

@dataclass
class ApiRecord:
    """One API of one tool as a file gives it; `function` is None for a names-only reference."""

    category: str
    tool_name: str
    api: str
    function: Function | None
    source: str
    where: str
    raw: Any
    tool_meta: dict[str, Any] = field(default_factory=dict)  # description, base_url, extra


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def query_api_function(api: dict) -> Function:
    """A query file's api_list entry -> Function. Raises ValueError."""
    params = parameters_schema(api.get("required_parameters", []), api.get("optional_parameters", []))
    method = api.get("method")
    if method is not None and not isinstance(method, str):
        raise ValueError("method is not a string")
    schema = response_schema_from_template(api["template_response"]) if "template_response" in api else None
    return Function(name=api["api_name"], description=_text(api.get("api_description")),
                    method=method, parameters=params, response_schema=schema)


def _names_ok(api: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(api, dict):
        return f"expected an object, got {type(api).__name__}"
    bad = [k for k in keys if not isinstance(api.get(k), str) or not api[k].strip()]
    return f"missing or empty {', '.join(bad)}" if bad else None


def is_query_file(doc: Any) -> bool:
    return isinstance(doc, list) and bool(doc) and isinstance(doc[0], dict) and "query" in doc[0] \
        and ("api_list" in doc[0] or "query_id" in doc[0])


def read_query_file(doc: list, source: str | Path) -> tuple[list[ApiRecord], list[Reject]]:
    records: list[ApiRecord] = []
    rejects: list[Reject] = []
    for qi, query in enumerate(doc):
        qwhere = f"query {qi}" + (f" (query_id {query.get('query_id')})" if isinstance(query, dict)
                                  and "query_id" in query else "")
        if not isinstance(query, dict) or not isinstance(query.get("api_list", []), list):
            rejects.append(make_reject(source, qwhere, "not an object with an api_list list", query))
            continue
        for ai, api in enumerate(query.get("api_list", [])):
            where = f"{qwhere} api_list[{ai}]"
            bad = _names_ok(api, ("category_name", "tool_name", "api_name"))
            if bad:
                rejects.append(make_reject(source, where, bad, api))
                continue
            if set(api) <= REF_KEYS:
                fn = None
            else:
                try:
                    fn = query_api_function(api)
                except ValueError as e:
                    rejects.append(make_reject(source, where, f"api {api['api_name']!r}: {e}", api))
                    continue
            records.append(ApiRecord(api["category_name"], api["tool_name"], api["api_name"], fn,
                                     str(source), where, api))
    return records, rejects


def is_toolenv_tool(doc: Any) -> bool:
    return isinstance(doc, dict) and "tool_name" in doc and isinstance(doc.get("api_list"), list)


def toolenv_api_function(api: dict) -> tuple[Function, dict[str, Any]]:
    """A toolenv tool file's api entry -> (Function, the entry's other fields). Raises ValueError."""
    params = parameters_schema(api.get("required_parameters", []), api.get("optional_parameters", []))
    url = api.get("url")
    path = urlsplit(url).path or None if isinstance(url, str) and url else None
    schema = api.get("schema")
    examples = api.get("test_endpoint")
    examples = [] if examples in (None, "", {}, []) else \
        [examples if isinstance(examples, str) else json.dumps(examples, ensure_ascii=False)]
    fn = Function(name=api["name"], description=_text(api.get("description")), method=api.get("method"),
                  path=path, parameters=params,
                  response_schema=schema if isinstance(schema, dict) and schema else None,
                  response_examples=examples)
    rest = {k: v for k, v in api.items() if k not in ("name", "description", "method", "required_parameters",
                                                      "optional_parameters")}
    return fn, rest


def read_toolenv_tool(doc: dict, source: str | Path) -> tuple[list[ApiRecord], list[Reject]]:
    """`toolenv/tools/<Category>/<tool>.json`; the category is the parent folder's name."""
    rejects: list[Reject] = []
    if not isinstance(doc.get("tool_name"), str) or not doc["tool_name"].strip():
        return [], [make_reject(source, "", "tool_name is missing or empty", doc)]
    category = str(doc.get("category_name") or Path(source).parent.name)
    host = doc.get("host")
    urls = [a.get("url") for a in doc["api_list"] if isinstance(a, dict) and isinstance(a.get("url"), str)]
    try:
        base = f"https://{host}" if isinstance(host, str) and host else \
            ("{0.scheme}://{0.netloc}".format(urlsplit(urls[0])) if urls else "")
    except ValueError as e:  # a malformed URL ("http://[::1")
        return [], [make_reject(source, "", f"malformed api url {urls[0]!r}: {e}", doc)]
    meta = {"description": _text(doc.get("tool_description")), "base_url": base,
            "extra": {k: v for k, v in doc.items() if k not in ("tool_name", "tool_description", "api_list")}}
    records = []
    for ai, api in enumerate(doc["api_list"]):
        where = f"api_list[{ai}]"
        bad = _names_ok(api, ("name",))
        if bad:
            rejects.append(make_reject(source, where, bad, api))
            continue
        try:
            fn, rest = toolenv_api_function(api)
        except ValueError as e:
            rejects.append(make_reject(source, where, f"api {api['name']!r}: {e}", api))
            continue
        meta_i = {**meta, "extra": {**meta["extra"], "api_extra": {api["name"]: rest}}}
        records.append(ApiRecord(category, doc["tool_name"], api["name"], fn, str(source), where, api, meta_i))
    if not records and not rejects:
        rejects.append(make_reject(source, "", "the tool has no APIs (api_list is empty)", doc))
    return records, rejects


def is_response_examples(doc: Any, path: str | Path) -> bool:
    return Path(path).parent.parent.name == "response_examples" or (
        isinstance(doc, dict) and set(doc) == {"api_list"} and isinstance(doc["api_list"], list) and all(
            isinstance(a, dict) and set(a) >= {"name", "schema"} for a in doc["api_list"]))


# --- grouping into tools ---------------------------------------------------------------------

def _conflict(old: Function, new: Function) -> str | None:
    """Why two definitions of one API disagree (None: they agree; `old` takes `new`'s extra facts)."""
    diffs = [f for f in ("description", "parameters") if getattr(old, f) != getattr(new, f)]
    if old.method and new.method and old.method.upper() != new.method.upper():
        diffs.append("method")
    if old.response_schema and new.response_schema and old.response_schema != new.response_schema:
        diffs.append("response")
    if diffs:
        return f"differs in {', '.join(diffs)}"
    old.method = old.method or new.method
    old.path = old.path or new.path
    old.response_schema = old.response_schema or new.response_schema
    old.response_examples += [e for e in new.response_examples if e not in old.response_examples]
    return None


def build_tools(records: list[ApiRecord]) -> tuple[list[Tool], list[Reject]]:
    """Group API records into tools by (category, tool_id(name)); union the functions."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    rejects: list[Reject] = []
    refs: list[ApiRecord] = []
    for r in records:
        key = (r.category, tool_id(r.tool_name))
        g = groups.setdefault(key, {"name": r.tool_name, "functions": {}, "origin": {}, "sources": [],
                                    "description": "", "base_url": "", "extra": {}})
        if r.source not in g["sources"]:
            g["sources"].append(r.source)
        if r.tool_meta:
            g["description"] = g["description"] or r.tool_meta.get("description", "")
            g["base_url"] = g["base_url"] or r.tool_meta.get("base_url", "")
            extra = r.tool_meta.get("extra", {})
            api_extra = {**g["extra"].get("api_extra", {}), **extra.get("api_extra", {})}
            g["extra"] = {**extra, **g["extra"], "api_extra": api_extra}
        if r.function is None:
            refs.append(r)
            continue
        old = g["functions"].get(r.api)
        if old is None:
            g["functions"][r.api] = r.function.model_copy(deep=True)
            g["origin"][r.api] = f"{r.source}: {r.where}"
        elif (why := _conflict(old, r.function)) is not None:
            rejects.append(make_reject(r.source, r.where, f"api {r.api!r} of tool {r.tool_name!r} {why} from "
                                       f"its earlier definition ({g['origin'][r.api]}); kept the earlier one", r.raw))
    for r in refs:  # names-only entries are fine when the API is documented somewhere in the import
        if r.api not in groups[(r.category, tool_id(r.tool_name))]["functions"]:
            rejects.append(make_reject(r.source, r.where, f"api {r.api!r} of tool {r.tool_name!r} ({r.category}) "
                                       "has only names and no documentation in this import", r.raw))
    categories = defaultdict(set)
    for cat, tid in groups:
        categories[tid].add(cat)
    tools = []
    for (cat, tid), g in groups.items():
        if not g["functions"]:
            continue
        ident = tool_id(f"{g['name']} {cat}") if len(categories[tid]) > 1 else tid
        extra = {**g["extra"], "source_files": g["sources"]}
        if not extra.get("api_extra"):
            extra.pop("api_extra", None)
        tools.append(Tool(id=ident, name=g["name"], category=cat, description=g["description"],
                          base_url=g["base_url"], source=SOURCE, functions=list(g["functions"].values()),
                          extra=extra))
    return tools, rejects


# --- response examples -----------------------------------------------------------------------

@dataclass
class ResponseExamples:
    category: str
    tool: str  # the file's stem: the standardized tool name
    apis: list[dict]
    source: str


def read_response_examples(doc: Any, source: str | Path) -> ResponseExamples:
    """Raises ValueError when the file is not `{"api_list": [{name, schema}]}`."""
    p = Path(source)
    if not isinstance(doc, dict) or not isinstance(doc.get("api_list"), list):
        raise ValueError('expected {"api_list": [{"name", "schema"}]}')
    return ResponseExamples(p.parent.name, p.stem, doc["api_list"], str(source))


def attach_response_examples(tools: list[Tool], files: list[ResponseExamples]) -> list[Reject]:
    """Set each matching function's `response_schema` (when it has none) from the example schemas."""
    by_key = {(t.category, tool_id(t.name)): t for t in tools if t.source == SOURCE}
    by_key |= {(t.category, str(t.extra["standardized_name"])): t for t in tools
               if t.source == SOURCE and t.extra.get("standardized_name")}
    rejects = []
    for f in files:
        tool = by_key.get((f.category, f.tool))
        if tool is None:
            if f.apis:
                rejects.append(make_reject(f.source, "", f"no imported ToolBench tool {f.category}/{f.tool} "
                                           "to attach these response examples to"))
            continue
        for i, api in enumerate(f.apis):
            name = api.get("name") if isinstance(api, dict) else None
            fn = next((x for x in tool.functions if x.name == name), None) or \
                next((x for x in tool.functions if isinstance(name, str) and api_name(x.name) == api_name(name)), None)
            if fn is None or "schema" not in api:
                why = "has no schema" if fn is not None else f"names no function of tool {tool.id!r}"
                rejects.append(make_reject(f.source, f"api_list[{i}]", f"response example {name!r} {why}", api))
                continue
            if fn.response_schema is None:
                fn.response_schema = response_schema_from_template(api["schema"])
    return rejects


# --- back to ToolBench -----------------------------------------------------------------------

def api_list_entries(tool: Tool, shape: Literal["query", "toolenv"] = "query") -> list[dict[str, Any]]:
    """A tool's functions as ToolBench api_list entries: the query-file shape (with category_name,
    tool_name) or the toolenv tool-file shape."""
    out = []
    api_extra = tool.extra.get("api_extra", {}) if isinstance(tool.extra.get("api_extra"), dict) else {}
    for fn in tool.functions:
        req, opt = parameter_lists(fn.parameters)
        template = (fn.response_schema or {}).get(TEMPLATE_X, ...) if fn.response_schema else ...
        if shape == "query":
            e = {"category_name": tool.category, "tool_name": tool.name, "api_name": fn.name,
                 "api_description": fn.description, "required_parameters": req, "optional_parameters": opt,
                 "method": fn.method}
            if template is not ...:
                e["template_response"] = template
        else:
            rest = dict(api_extra.get(fn.name, {}))
            e = {"name": fn.name, "url": rest.pop("url", (tool.base_url + (fn.path or "")) or None),
                 "description": fn.description, "method": fn.method,
                 "required_parameters": req, "optional_parameters": opt, **rest}
        out.append(e)
    return out


def import_toolbench_file(doc: Any, source: str | Path) -> tuple[FileResult, list[ApiRecord]]:
    """A query file or a toolenv tool file -> API records (grouped later, across files)."""
    if is_query_file(doc):
        records, rejects = read_query_file(doc, source)
        return FileResult("toolbench_queries", rejects=rejects), records
    records, rejects = read_toolenv_tool(doc, source)
    return FileResult("toolbench_tool", rejects=rejects), records
