"""OpenAPI 3.x documents -> Tool: validated with openapi-spec-validator, `$ref`s resolved with jsonref.

Each operation becomes a Function whose `parameters` is one JSON-Schema object: the path, query,
header and cookie parameters plus the JSON request body's properties (`x-in` says where each goes,
for the HTTP executor). The 2xx response gives `response_schema` and `response_examples`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

import jsonref
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError, ValidatorDetectError
from referencing.exceptions import Unresolvable

from toolweave.schemas import Function, Tool
from toolweave.toolsets.common import DocumentError, json_pointer, one_line, read_document
from toolweave.toolsets.naming import standardize, tool_id

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_REF_DEPTH = 24  # nested $ref expansions per branch; deeper ones stay as a stub (bounds blow-up)
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")


class OpenAPIError(ValueError):
    """An unusable OpenAPI document; the message gives the JSON pointer and the reason."""


# --- validation ------------------------------------------------------------------------------

def _find_refs(node: Any, path: tuple = ()) -> list[tuple[str, str]]:
    """(pointer of the $ref, target) for every $ref in a document."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.append((json_pointer((*path, "$ref")), node["$ref"]))
        for k, v in node.items():
            out.extend(_find_refs(v, (*path, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_find_refs(v, (*path, i)))
    return out


def _resolves_locally(doc: Any, ref: str) -> bool:
    node = doc
    fragment = unquote(urldefrag(ref).fragment)
    for part in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_refs(doc: dict, base_uri: str = "") -> None:
    """Remote refs are never fetched; local file refs only beside a file; `#/...` must exist."""
    for where, ref in _find_refs(doc):
        target, _ = urldefrag(ref)
        if target.startswith(("http://", "https://", "//")):
            raise OpenAPIError(f"at {where}: remote $ref {ref!r} is not fetched; bundle the document first")
        if target and not base_uri:
            raise OpenAPIError(f"at {where}: external $ref {ref!r} needs the document's file location")
        if not target and not _resolves_locally(doc, ref):
            raise OpenAPIError(f"at {where}: $ref {ref!r} points to nothing in the document")


def validate_openapi(doc: Any, base_uri: str = "") -> None:
    """Raise OpenAPIError (pointer + validator's reason) unless `doc` is a valid OpenAPI 3.x document."""
    if not isinstance(doc, dict):
        raise OpenAPIError(f"at : expected an OpenAPI object, got {type(doc).__name__}")
    version = str(doc.get("openapi", ""))
    if "swagger" in doc and not version:
        raise OpenAPIError("at /swagger: Swagger/OpenAPI 2.0 is not supported; convert it to OpenAPI 3")
    if not version.startswith("3."):
        raise OpenAPIError(f"at /openapi: expected an OpenAPI 3.x version, got {doc.get('openapi')!r}")
    check_refs(doc, base_uri)
    try:
        validate(doc, base_uri=base_uri)
    except OpenAPIValidationError as e:
        raise OpenAPIError(f"at {json_pointer(e.absolute_path) or '/'}: {one_line(e.message)}") from None
    except ValidatorDetectError:
        raise OpenAPIError(f"at /openapi: unknown OpenAPI version {version!r}") from None
    except Unresolvable as e:
        raise OpenAPIError(f"unresolvable $ref {getattr(e, 'ref', '')!r}: {type(e).__name__}") from None
    except Exception as e:  # the validator has its own bugs on odd input: report, never crash
        raise OpenAPIError(f"validator failed: {type(e).__name__}: {one_line(str(e), 200)}") from None


# --- $ref resolution -------------------------------------------------------------------------

def _local_loader(uri: str) -> Any:
    """jsonref loader for relative file refs; never the network."""
    if not uri.startswith("file:"):
        raise OpenAPIError(f"refusing to load {uri!r}")
    try:
        return read_document(Path(uri.removeprefix("file://")))
    except DocumentError as e:
        raise OpenAPIError(f"{uri}: {e}") from None


def resolve(node: Any, _stack: tuple[str, ...] = ()) -> Any:
    """Plain JSON copy of `node` with jsonref proxies expanded. A reference to something already
    being expanded (a recursive schema) becomes a stub with `x-recursive-ref`, so the result is finite."""
    if isinstance(node, jsonref.JsonRef):
        ref = node.__reference__["$ref"]
        uri = urljoin(object.__getattribute__(node, "base_uri"), ref)  # a proxy: ask the JsonRef itself
        if uri in _stack or len(_stack) >= MAX_REF_DEPTH:
            target = node.__subject__
            stub: dict[str, Any] = {"x-recursive-ref": ref}
            if isinstance(target, dict) and isinstance(target.get("type"), str):
                stub["type"] = target["type"]
            return stub
        return resolve(node.__subject__, (*_stack, uri))
    if isinstance(node, dict):
        return {k: resolve(v, _stack) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, _stack) for v in node]
    return node


def with_proxies(doc: dict, base_uri: str = "") -> dict:
    return jsonref.replace_refs(doc, base_uri=base_uri, loader=_local_loader, lazy_load=True)


# --- operations -> functions -----------------------------------------------------------------

def _pick_media(content: dict) -> dict | None:
    if not isinstance(content, dict) or not content:
        return None
    for t in JSON_TYPES:
        if t in content:
            return content[t]
    json_like = [v for k, v in content.items() if "json" in k]
    return json_like[0] if json_like else next(iter(content.values()))


def _parameters_schema(params: list[dict], body: dict | None) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        schema = dict(p.get("schema") or {})
        if not schema and isinstance(p.get("content"), dict):  # `content` form of a parameter
            schema = dict((_pick_media(p["content"]) or {}).get("schema") or {})
        if p.get("description") and "description" not in schema:
            schema["description"] = p["description"]
        if "example" in p and "example" not in schema:
            schema["example"] = p["example"]
        schema["x-in"] = p["in"]
        props[p["name"]] = schema
        if p.get("required") or p["in"] == "path":
            required.append(p["name"])
    if body:
        media = _pick_media(body.get("content") or {}) or {}
        schema = media.get("schema") or {}
        body_required = bool(body.get("required"))
        if isinstance(schema.get("properties"), dict):
            for name, sub in schema["properties"].items():
                key = name if name not in props else f"body_{name}"  # a query param of the same name wins
                sub = dict(sub) if isinstance(sub, dict) else {}
                sub["x-in"] = "body"
                if key != name:
                    sub["x-name"] = name
                props[key] = sub
                if body_required and name in (schema.get("required") or []):
                    required.append(key)
        elif schema:  # a non-object body (array, string): one argument holding it
            props["body"] = {**schema, "x-in": "body"}
            if body_required:
                required.append("body")
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(dict.fromkeys(required))
    return out


def _success_response(responses: dict) -> dict | None:
    """The first 2xx response (200 before 201 before 2XX), else `default`."""
    if not isinstance(responses, dict):
        return None
    by_code = {str(c).upper(): r for c, r in responses.items()}  # YAML may give int keys
    codes = sorted(c for c in by_code if c.startswith("2") and c != "2XX")
    for code in [*codes, "2XX", "DEFAULT"]:
        if isinstance(by_code.get(code), dict):
            return by_code[code]
    return None


def _examples(media: dict, schema: dict | None) -> list[str]:
    found: list[Any] = []
    if "example" in media:
        found.append(media["example"])
    for ex in (media.get("examples") or {}).values():
        if isinstance(ex, dict) and "value" in ex:
            found.append(ex["value"])
    if isinstance(schema, dict) and "example" in schema:
        found.append(schema["example"])
    return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in found]


def operation_function(name: str, method: str, path: str, op: dict, path_params: list[dict]) -> Function:
    """One resolved operation -> Function (operation parameters override path-level ones)."""
    merged = {(p.get("name"), p.get("in")): p for p in path_params if isinstance(p, dict)}
    merged.update({(p.get("name"), p.get("in")): p for p in op.get("parameters") or [] if isinstance(p, dict)})
    params = [p for p in merged.values() if isinstance(p.get("name"), str) and p.get("in")]
    response = _success_response(op.get("responses") or {}) or {}
    media = _pick_media(response.get("content") or {}) or {}
    schema = media.get("schema") if isinstance(media.get("schema"), dict) else None
    summary, desc = (op.get("summary") or "").strip(), (op.get("description") or "").strip()
    description = desc if not summary or summary in desc else (f"{summary}\n{desc}" if desc else summary)
    return Function(name=name, description=description, method=method.upper(), path=path,
                    parameters=_parameters_schema(params, op.get("requestBody")),
                    response_schema=schema, response_examples=_examples(media, schema))


def derived_name(method: str, path: str) -> str:
    """A name for an operation without operationId: `get_users_id` for GET /users/{id}."""
    return standardize(f"{method}_{path}") or method


def _base_url(doc: dict) -> str:
    servers = doc.get("servers") or []
    if not servers or not isinstance(servers[0], dict):
        return ""
    url = str(servers[0].get("url", ""))
    for var, spec in (servers[0].get("variables") or {}).items():
        url = url.replace("{" + var + "}", str((spec or {}).get("default", "")))
    return url


def _auth(doc: dict) -> str:
    schemes = ((doc.get("components") or {}).get("securitySchemes") or {}).values()
    kinds = [" ".join(x for x in (s.get("type", ""), s.get("scheme", "")) if x)
             for s in schemes if isinstance(s, dict)]
    return ", ".join(dict.fromkeys(k for k in kinds if k))


def openapi_tool(doc: dict, *, name: str | None = None, base_uri: str = "", source: str = "openapi",
                 projection: dict[tuple[str, str], str] | None = None) -> Tool:
    """A validated OpenAPI document -> Tool. `projection` maps (path, method) to a function name
    (ToolAlpaca's Function_Projection, inverted). Raises OpenAPIError."""
    validate_openapi(doc, base_uri)
    try:
        resolved = with_proxies(doc, base_uri)
        functions: list[Function] = []
        taken: set[str] = set()
        for path, item in (resolved.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            item_params = resolve(item.get("parameters") or [])
            for method in HTTP_METHODS:
                if not isinstance(item.get(method), dict):
                    continue
                op = resolve(item[method])
                fname = ((projection or {}).get((path, method)) or op.get("operationId")
                         or derived_name(method, path))
                base, n = fname, 2
                while fname in taken:  # derived names may collide (GET /a/b vs GET /a_b)
                    fname, n = f"{base}_{n}", n + 1
                taken.add(fname)
                functions.append(operation_function(fname, method, path, op, item_params))
    except (jsonref.JsonRefError, OpenAPIError) as e:
        raise OpenAPIError(f"$ref resolution failed: {one_line(str(e), 300)}") from None
    if not functions:  # valid in 3.1 (webhooks/components only), useless as a tool
        raise OpenAPIError("at /paths: the document defines no operations")
    info = doc.get("info") or {}
    title = name or str(info.get("title") or "").strip()
    if not title:
        raise OpenAPIError("at /info/title: the document has no title to name the tool by")
    return Tool(id=tool_id(title), name=title, description=str(info.get("description") or ""),
                auth=_auth(doc), base_url=_base_url(doc), source=source, functions=functions, openapi=doc)
