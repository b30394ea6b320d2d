"""Lenient OpenAPI import: repair the defects real documents (written by people or LLMs) carry.

Each repair is one line `at POINTER: what was wrong; what was done`, kept on the tool in
`extra["repairs"]`. Repaired:
- misnesting (ToolAlpaca's eval_real has both): a path nested inside a path item (lifted to
  `paths`), a root key such as `components` given inside `paths` (moved to the root), and a
  component map at the document root (`parameters`, `schemas`, Swagger-2 `definitions`, ...: moved
  under `components`, its local `$ref`s rewritten); where the target is taken, it is left for the
  validator to reject;
- a local `$ref` to a component that is not there: a schema/response/example becomes a stand-in
  (an empty schema, a response with a description), a parameter or request body is dropped;
- a path without its leading `/`;
- a path parameter not marked `required: true`;
- parameters at the wrong level: `parameters` given as a name -> parameter map, Swagger-2 style
  schema keywords (`type`, `format`, `enum`, ...) on the parameter instead of in its `schema`, a
  Swagger-2 `in: body` parameter (becomes the operation's `requestBody`);
- a response with `schema` but no `content` map (wrapped as `application/json`), and a response
  or operation without its required `description` / `responses`.
Anything else is left for the validator to reject, with where and why.
"""
from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urldefrag

from toolweave.toolsets.common import json_pointer, pointer_target

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCHEMA_KEYWORDS = ("type", "format", "enum", "default", "items", "minimum", "maximum", "pattern",
                   "minLength", "maxLength", "collectionFormat")


def ref_paths(node: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path of the object holding the $ref, the ref) for every string $ref."""
    out: list[tuple[tuple, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.append((path, node["$ref"]))
        for k, v in node.items():
            out.extend(ref_paths(v, (*path, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(ref_paths(v, (*path, i)))
    return out


def _exists(doc: Any, fragment: str) -> bool:
    return pointer_target(doc, fragment)[0]


def _repair_missing_refs(doc: dict, repairs: list[str]) -> None:
    missing = [(p, ref) for p, ref in ref_paths(doc) if p and not urldefrag(ref).url
               and urldefrag(ref).fragment.startswith("/components/") and not _exists(doc, urldefrag(ref).fragment)]
    # deepest and last first, so removing a list item does not shift the ones still to do
    for path, ref in sorted(missing, key=lambda m: [str(x).zfill(9) if isinstance(x, int) else x for x in m[0]],
                            reverse=True):
        *parent_path, key = path
        parent: Any = doc
        for part in parent_path:
            parent = parent[part]
        kind = urldefrag(ref).fragment.split("/")[2] if urldefrag(ref).fragment.count("/") >= 2 else ""
        at = json_pointer((*path, "$ref"))
        if kind in ("parameters", "requestBodies", "headers", "examples", "links", "callbacks"):
            parent.pop(key)
            repairs.append(f"at {at}: $ref {ref!r} points to nothing; removed")
        elif kind == "responses":
            parent[key] = {"description": f"unresolved $ref {ref}"}
            repairs.append(f"at {at}: $ref {ref!r} points to nothing; replaced by a bare response")
        else:
            parent[key] = {"description": f"unresolved $ref {ref}"}
            repairs.append(f"at {at}: $ref {ref!r} points to nothing; replaced by an empty schema")


COMPONENT_KINDS = ("schemas", "responses", "parameters", "examples", "requestBodies", "headers",
                   "securitySchemes", "links", "callbacks")
ROOT_KEYS = ("openapi", "info", "servers", "components", "security", "tags", "externalDocs")


def _repair_nested_paths(doc: dict, repairs: list[str]) -> None:
    """Paths nested inside a path item are lifted to `paths`; root keys inside `paths` go to the root."""
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        return
    for key in [k for k in ROOT_KEYS if k in paths]:
        if key in doc:
            continue  # both places: the validator names it
        doc[key] = paths.pop(key)
        repairs.append(f"at {json_pointer(('paths', key))}: {key!r} inside paths; moved to the document root")
    todo = [(path, item, ("paths", path)) for path, item in paths.items()]
    while todo:
        path, item, where = todo.pop(0)
        if not isinstance(item, dict):
            continue
        for key in [k for k in item if isinstance(k, str) and k.startswith("/")]:
            if key in paths:
                continue  # the same path twice: left for the validator to name
            paths[key] = item.pop(key)
            repairs.append(f"at {json_pointer((*where, key))}: path nested inside the path item {path!r}; "
                           f"moved to paths")
            todo.append((key, paths[key], (*where, key)))


def _rewrite_refs(node: Any, old: str, new: str) -> int:
    n = 0
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(old):
            node["$ref"], n = new + ref[len(old):], 1
        return n + sum(_rewrite_refs(v, old, new) for k, v in node.items() if k != "$ref")
    if isinstance(node, list):
        return sum(_rewrite_refs(v, old, new) for v in node)
    return 0


def _repair_root_components(doc: dict, repairs: list[str]) -> None:
    """Named component maps at the root (`parameters: {Name: {...}}`, Swagger-2 `definitions`) move
    under `components`; `#/<key>/...` refs follow them."""
    for key in (*COMPONENT_KINDS, "definitions"):
        found = doc.get(key)
        if not (isinstance(found, dict) and found and all(isinstance(v, dict) for v in found.values())):
            continue
        kind = "schemas" if key == "definitions" else key
        components = doc.setdefault("components", {})
        target = components.setdefault(kind, {}) if isinstance(components, dict) else None
        if not isinstance(target, dict) or any(name in target for name in found):
            continue  # a clash: left for the validator to name
        target.update(doc.pop(key))
        moved = _rewrite_refs(doc, f"#/{key}/", f"#/components/{kind}/")
        repairs.append(f"at /{key}: {key} at the document root; moved to /components/{kind}"
                       + (f" ({moved} $ref(s) rewritten)" if moved else ""))


def _repair_paths(doc: dict, repairs: list[str]) -> None:
    paths = doc.get("paths")
    if not isinstance(paths, dict) or all(not isinstance(k, str) or k.startswith("/") for k in paths):
        return
    fixed: dict[Any, Any] = {}
    for key, item in paths.items():
        new = key if not isinstance(key, str) or key.startswith("/") else "/" + key
        if new != key and new not in paths:
            repairs.append(f"at {json_pointer(('paths', key))}: path without a leading '/'; now {new!r}")
            key = new
        fixed[key] = item
    doc["paths"] = fixed


def _repair_parameters(owner: dict, where: tuple, repairs: list[str], operation: bool) -> None:
    params = owner.get("parameters")
    if isinstance(params, dict):  # {name: {in, schema}} instead of a list
        params = [{"name": k, **v} if isinstance(v, dict) and "name" not in v else v for k, v in params.items()]
        owner["parameters"] = params
        repairs.append(f"at {json_pointer((*where, 'parameters'))}: parameters given as a map; made a list")
    if not isinstance(params, list):
        return
    for i, p in reversed(list(enumerate(params))):
        if not isinstance(p, dict) or "$ref" in p:
            continue
        at = json_pointer((*where, "parameters", i))
        if p.get("in") == "body":
            params.pop(i)
            if operation and "requestBody" not in owner:
                owner["requestBody"] = {"required": bool(p.get("required")), "content": {
                    "application/json": {"schema": p.get("schema") if isinstance(p.get("schema"), dict) else {}}}}
                repairs.append(f"at {at}: an 'in: body' parameter (Swagger 2); made the requestBody")
            else:
                repairs.append(f"at {at}: an 'in: body' parameter (Swagger 2) with a requestBody already; dropped")
            continue
        loose = [k for k in SCHEMA_KEYWORDS if k in p]
        if loose and "schema" not in p and "content" not in p:
            p["schema"] = {k: p.pop(k) for k in loose if k != "collectionFormat"}
            p.pop("collectionFormat", None)
            repairs.append(f"at {at}: schema keywords ({', '.join(loose)}) on the parameter; moved into schema")
        if p.get("in") == "path" and p.get("required") is not True:
            p["required"] = True
            repairs.append(f"at {at}: path parameter {p.get('name')!r} not marked required; now required")


def _repair_responses(op: dict, where: tuple, repairs: list[str]) -> None:
    responses = op.get("responses")
    if responses is None or responses == {}:  # missing; anything else wrong is the validator's to name
        op["responses"] = {"200": {"description": ""}}
        repairs.append(f"at {json_pointer(where)}: operation without responses; added a bare 200")
        return
    if not isinstance(responses, dict):
        return
    for code, resp in responses.items():
        if not isinstance(resp, dict) or "$ref" in resp:
            continue
        at = json_pointer((*where, "responses", code))
        if "schema" in resp and "content" not in resp:
            resp["content"] = {"application/json": {"schema": resp.pop("schema")}}
            repairs.append(f"at {at}: response with a schema but no content map; wrapped as application/json")
        if not isinstance(resp.get("description"), str):
            resp["description"] = ""
            repairs.append(f"at {at}: response without a description; added an empty one")


def repair_openapi(doc: dict) -> tuple[dict, list[str]]:
    """A repaired copy of `doc` and the repairs made (none: an equal copy, an empty list)."""
    doc = copy.deepcopy(doc)
    repairs: list[str] = []
    _repair_nested_paths(doc, repairs)  # first: the refs and paths below are checked where they now are
    _repair_root_components(doc, repairs)
    _repair_missing_refs(doc, repairs)
    _repair_paths(doc, repairs)
    for path, item in (doc.get("paths") or {}).items() if isinstance(doc.get("paths"), dict) else ():
        if not isinstance(item, dict):
            continue
        _repair_parameters(item, ("paths", path), repairs, operation=False)
        for method in HTTP_METHODS:
            if isinstance(item.get(method), dict):
                _repair_parameters(item[method], ("paths", path, method), repairs, operation=True)
                _repair_responses(item[method], ("paths", path, method), repairs)
    return doc, repairs
