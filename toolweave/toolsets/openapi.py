"""OpenAPI 3.x documents -> Tool: validated with openapi-spec-validator, `$ref`s resolved with jsonref.

Each operation becomes a Function whose `parameters` is one JSON-Schema object: the path, query,
header and cookie parameters plus the JSON request body's properties (`x-in` says where each goes,
for the HTTP executor). The 2xx response gives `response_schema` and `response_examples`.

`$ref`s resolve only inside the document and in files of the document's own folder (subfolders
included; no parent folder, no absolute path, no other scheme, never the network), for our
resolution and for the validator's (its retriever gets only `RefScope.load`). The work per document
is bounded: at most MAX_EXPANDED values with every `$ref` expanded, and MAX_SECONDS.
With `lenient=True` (the importer) common defects are repaired first (toolsets/openapi_repair.py).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.request import url2pathname

import jsonref
from jsonschema_path import SchemaPath
from openapi_spec_validator.shortcuts import get_validator_cls
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError, ValidatorDetectError
from referencing.exceptions import Unresolvable

from toolweave.schemas import Function, Tool
from toolweave.toolsets.common import DATA_SUFFIXES, DocumentError, check_tree, json_pointer, one_line, \
    pointer_target, read_document
from toolweave.toolsets.naming import standardize, tool_id
from toolweave.toolsets.openapi_repair import ref_paths, repair_openapi

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_REF_DEPTH = 24  # nested $ref expansions per branch; deeper ones stay as a stub (bounds blow-up)
MAX_EXPANDED = 200_000  # values of a document with its $refs expanded ($ref fan-out: 2 refs x 30 levels)
MAX_SECONDS = 20.0  # of $ref checking and resolution per document
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class OpenAPIError(ValueError):
    """An unusable OpenAPI document; the message gives the JSON pointer and the reason."""


# --- validation ------------------------------------------------------------------------------

def _find_refs(doc: Any) -> list[tuple[str, str]]:
    """(pointer of the $ref, target) for every $ref in a document."""
    return [(json_pointer((*path, "$ref")), ref) for path, ref in ref_paths(doc)]


def _resolves_locally(doc: Any, ref: str) -> bool:
    return pointer_target(doc, urldefrag(ref).fragment)[0]


class RefScope:
    """Where the `$ref`s of one document may point, and the files they loaded (each checked the
    same way). `base_uri` is the document's file URI ("" for a document held in memory: then only
    `#/...` refs resolve)."""

    def __init__(self, base_uri: str = ""):
        self.base_uri = base_uri
        self.folder = _uri_path(base_uri).parent if base_uri.startswith("file:") else None
        self.docs: dict[str, Any] = {}
        self.deadline = time.monotonic() + MAX_SECONDS

    def file_uri(self, target: str, from_uri: str, where: str = "") -> str:
        """The file URI a `$ref` target names, if the scope allows it (else OpenAPIError)."""
        at = f"at {where}: " if where else ""
        if target.startswith(("http://", "https://", "//")):
            raise OpenAPIError(f"{at}remote $ref {target!r} is not fetched; bundle the document first")
        if _SCHEME.match(target) or target.startswith(("/", "\\")):
            raise OpenAPIError(f"{at}$ref {target!r} is absolute; only files beside the document are read")
        if self.folder is None:
            raise OpenAPIError(f"{at}external $ref {target!r} needs the document's file location")
        uri = urljoin(from_uri, target)
        path = _uri_path(uri)
        if not path.is_relative_to(self.folder):
            raise OpenAPIError(f"{at}$ref {target!r} leaves the document's folder")
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise OpenAPIError(f"{at}$ref {target!r} is not a .json/.yaml/.yml file")
        return path.as_uri()

    def load(self, uri: str) -> Any:
        """A referenced file's document (read once, its own refs checked); OpenAPIError otherwise."""
        if uri in self.docs:
            return self.docs[uri]
        if not uri.startswith("file:") or self.folder is None or not _uri_path(uri).is_relative_to(self.folder):
            raise OpenAPIError(f"refusing to load {uri!r}: outside the document's folder")
        try:
            # the scope's time limit holds during the read too (a stuck filesystem)
            doc = read_document(_uri_path(uri), timeout_s=max(self.deadline - time.monotonic(), 0.0))
        except DocumentError as e:
            raise OpenAPIError(f"$ref file {_uri_path(uri).name}: {e}") from None
        self.docs[uri] = doc
        check_refs(doc, uri, self)
        return doc

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise OpenAPIError(f"at /: $ref resolution took over {MAX_SECONDS:g} s")


def _uri_path(uri: str) -> Path:
    """The real path of a file URI (symlinks followed, so a link cannot lead out of the folder)."""
    return Path(url2pathname(urlsplit(uri).path)).resolve()


def check_refs(doc: Any, base_uri: str = "", scope: RefScope | None = None) -> RefScope:
    """Every `$ref` allowed by the scope and pointing at something; the files they name are read
    (once) and checked too; then the expanded size is bounded. Returns the scope."""
    scope = scope or RefScope(base_uri)
    for where, ref in _find_refs(doc):
        target, fragment = urldefrag(ref)
        if target:
            uri = scope.file_uri(target, base_uri or scope.base_uri, where)
            found = pointer_target(scope.load(uri), fragment)[0]
        else:
            found = _resolves_locally(doc, ref)
        if not found:
            raise OpenAPIError(f"at {where}: $ref {ref!r} points to nothing in the document")
    if base_uri == scope.base_uri:  # the root document: bound its expansion once everything loaded
        _check_expansion(doc, scope)
    return scope


def _check_expansion(doc: Any, scope: RefScope) -> None:
    """Raise unless `doc` with every `$ref` expanded (recursion stopped as `resolve` stops it)
    has at most MAX_EXPANDED values: a 1 KB document of refs to refs can stand for billions."""
    stack: list[tuple[Any, str, Any, tuple[str, ...]]] = [(doc, scope.base_uri, doc, ())]
    targets: dict[tuple[str, str], tuple[str, Any, str, bool, Any]] = {}  # (uri, $ref) -> where it leads
    count = 0
    while stack:
        node, uri, root, chain = stack.pop()
        count += 1
        if count > MAX_EXPANDED:
            raise OpenAPIError(f"at /: the document expands to over {MAX_EXPANDED} values through its $refs")
        if count % 10_000 == 0:
            scope.tick()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if (uri, ref) not in targets:
                    target, fragment = urldefrag(ref)
                    to_uri = scope.file_uri(target, uri) if target else uri
                    to_root = scope.docs.get(to_uri, root) if target else root
                    targets[uri, ref] = (to_uri, to_root, f"{to_uri}#{fragment}", *pointer_target(to_root, fragment))
                to_uri, to_root, key, found, sub = targets[uri, ref]
                if found and key not in chain and len(chain) < MAX_REF_DEPTH:
                    stack.append((sub, to_uri, to_root, (*chain, key)))
            stack.extend((v, uri, root, chain) for k, v in node.items() if k != "$ref")
        elif isinstance(node, list):
            stack.extend((v, uri, root, chain) for v in node)


class _ScopedHandlers(dict):
    """The validator's retriever asks `scheme in handlers` and otherwise opens the URL itself
    (http, ftp, ...): every scheme is 'handled' here, by the scope, which loads only its files."""

    def __init__(self, scope: RefScope):
        super().__init__()
        self.scope = scope

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str):
        return self.scope.load


def validate_openapi(doc: Any, base_uri: str = "", scope: RefScope | None = None) -> RefScope:
    """Raise OpenAPIError (pointer + validator's reason) unless `doc` is a valid OpenAPI 3.x document."""
    if not isinstance(doc, dict):
        raise OpenAPIError(f"at : expected an OpenAPI object, got {type(doc).__name__}")
    version = str(doc.get("openapi", ""))
    if "swagger" in doc and not version:
        raise OpenAPIError("at /swagger: Swagger/OpenAPI 2.0 is not supported; convert it to OpenAPI 3")
    if not version.startswith("3."):
        raise OpenAPIError(f"at /openapi: expected an OpenAPI 3.x version, got {doc.get('openapi')!r}")
    try:
        check_tree(doc)  # documents held in strings (ToolAlpaca) or written by an LLM skip read_document
    except DocumentError as e:
        raise OpenAPIError(f"at /: {e}") from None
    scope = check_refs(doc, base_uri, scope or RefScope(base_uri))
    try:
        spec = SchemaPath.from_dict(doc, base_uri=base_uri, handlers=_ScopedHandlers(scope))
        get_validator_cls(doc)(spec).validate()
    except OpenAPIValidationError as e:
        raise OpenAPIError(f"at {json_pointer(e.absolute_path) or '/'}: {one_line(e.message)}") from None
    except ValidatorDetectError:
        raise OpenAPIError(f"at /openapi: unknown OpenAPI version {version!r}") from None
    except Unresolvable as e:
        raise OpenAPIError(f"unresolvable $ref {getattr(e, 'ref', '')!r}: {type(e).__name__}") from None
    except RecursionError:
        raise OpenAPIError("validator failed: the document nests too deeply") from None
    except Exception as e:  # the validator has its own bugs on odd input: report, never crash
        raise OpenAPIError(f"validator failed: {type(e).__name__}: {one_line(str(e), 200)}") from None
    return scope


# --- $ref resolution -------------------------------------------------------------------------

def resolve(node: Any, _stack: tuple[str, ...] = (), scope: RefScope | None = None) -> Any:
    """Plain JSON copy of `node` with jsonref proxies expanded. A reference to something already
    being expanded (a recursive schema) becomes a stub with `x-recursive-ref`, so the result is finite."""
    if scope is not None:
        scope.tick()
    if isinstance(node, jsonref.JsonRef):
        ref = node.__reference__["$ref"]
        uri = urljoin(object.__getattribute__(node, "base_uri"), ref)  # a proxy: ask the JsonRef itself
        if uri in _stack or len(_stack) >= MAX_REF_DEPTH:
            target = node.__subject__
            stub: dict[str, Any] = {"x-recursive-ref": ref}
            if isinstance(target, dict) and isinstance(target.get("type"), str):
                stub["type"] = target["type"]
            return stub
        return resolve(node.__subject__, (*_stack, uri), scope)
    if isinstance(node, dict):
        return {k: resolve(v, _stack, scope) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, _stack, scope) for v in node]
    return node


def with_proxies(doc: dict, base_uri: str = "", scope: RefScope | None = None) -> dict:
    """jsonref proxies for `doc`; files come only from the scope (never the network)."""
    scope = scope or RefScope(base_uri)
    return jsonref.replace_refs(doc, base_uri=base_uri, loader=scope.load, lazy_load=True)


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
    variables = servers[0].get("variables")
    for var, spec in (variables.items() if isinstance(variables, dict) else ()):
        url = url.replace("{" + str(var) + "}", str(spec.get("default", "") if isinstance(spec, dict) else ""))
    try:
        urlsplit(url).port  # noqa: B018 - raises on a malformed URL ("http://[::1", a port of 99999)
    except ValueError as e:
        raise OpenAPIError(f"at /servers/0/url: malformed URL {url[:100]!r}: {e}") from None
    return url


def _auth(doc: dict) -> str:
    schemes = ((doc.get("components") or {}).get("securitySchemes") or {}).values()
    kinds = [" ".join(x for x in (s.get("type", ""), s.get("scheme", "")) if x)
             for s in schemes if isinstance(s, dict)]
    return ", ".join(dict.fromkeys(k for k in kinds if k))


def openapi_tool(doc: dict, *, name: str | None = None, base_uri: str = "", source: str = "openapi",
                 projection: dict[tuple[str, str], str] | None = None, lenient: bool = False) -> Tool:
    """A validated OpenAPI document -> Tool. `projection` maps (path, method) to a function name
    (ToolAlpaca's Function_Projection, inverted). `lenient` repairs common defects first and lists
    them in `extra["repairs"]` (imports; what an LLM writes is checked strictly). Raises OpenAPIError."""
    repairs: list[str] = []
    if lenient and isinstance(doc, dict):
        doc, repairs = repair_openapi(doc)
    try:
        scope = validate_openapi(doc, base_uri)
    except OpenAPIError as e:
        raise OpenAPIError(f"{e} (after repairs: {'; '.join(repairs)})" if repairs else str(e)) from None
    try:
        resolved = with_proxies(doc, base_uri, scope)
        functions: list[Function] = []
        taken: set[str] = set()
        for path, item in (resolved.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            item_params = resolve(item.get("parameters") or [], scope=scope)
            for method in HTTP_METHODS:
                if not isinstance(item.get(method), dict):
                    continue
                op = resolve(item[method], scope=scope)
                fname = ((projection or {}).get((path, method)) or op.get("operationId")
                         or derived_name(method, path))
                base, n = fname, 2
                while fname in taken:  # derived names may collide (GET /a/b vs GET /a_b)
                    fname, n = f"{base}_{n}", n + 1
                taken.add(fname)
                functions.append(operation_function(fname, method, path, op, item_params))
    except (jsonref.JsonRefError, OpenAPIError) as e:
        raise OpenAPIError(f"$ref resolution failed: {one_line(str(e), 300)}") from None
    except RecursionError:
        raise OpenAPIError("$ref resolution failed: the expanded document nests too deeply") from None
    if not functions:  # valid in 3.1 (webhooks/components only), useless as a tool
        raise OpenAPIError("at /paths: the document defines no operations")
    info = doc.get("info") or {}
    title = name or str(info.get("title") or "").strip()
    if not title:
        raise OpenAPIError("at /info/title: the document has no title to name the tool by")
    tool = Tool(id=tool_id(title), name=title, description=str(info.get("description") or ""),
                auth=_auth(doc), base_url=_base_url(doc), source=source, functions=functions, openapi=doc)
    if repairs:
        tool.extra["repairs"] = repairs
    return tool
