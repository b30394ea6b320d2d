"""ToolAlpaca toolset building: catalogue entry -> introduction and function list -> OpenAPI 3.0
document, validated, with the validator's complaint sent back for another try -> Tool with
ToolAlpaca's natural-language documentation and function -> (path, method) projection.
"""
from __future__ import annotations

import json
import re
from typing import Any

from toolweave.config import ToolsetsConfig
from toolweave.llm.types import CallTag, ChatModel, LLMError
from toolweave.prompts import render
from toolweave.schemas import CatalogueEntry, Reject, Tool
from toolweave.toolsets.naming import tool_id
from toolweave.toolsets.openapi import OpenAPIError, openapi_tool

SOURCE = "toolalpaca_build"
HTTP_METHODS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


class BuildError(ValueError):
    """One attempt's document is unusable; the message is what the LLM is told."""


# --- JSON out of messy LLM text ---------------------------------------------------------------

def extract_json(text: str) -> Any:
    """The first JSON object or array in `text`: inside ``` fences, bare, or after leading prose.

    Small models wrap JSON in prose and fences, or stop mid-document; raise ValueError saying which.
    """
    if not text or not text.strip():
        raise ValueError("the reply is empty")
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    if "```" in text and not candidates:  # an unclosed fence: the model stopped mid-block
        candidates.append(text.split("```", 1)[1].split("\n", 1)[-1])
    candidates.append(text)
    decoder = json.JSONDecoder()
    for cand in candidates:
        for start in (i for i, ch in enumerate(cand) if ch in "{["):
            try:
                value, _ = decoder.raw_decode(cand, start)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict | list):
                return value
    raise ValueError("no complete JSON object or array found in the reply"
                     + (" (it looks cut off)" if text.count("{") > text.count("}") else ""))


# --- natural-language documentation (ToolAlpaca's NLDocumentation layout) ---------------------

def _sentence(text: str | None) -> str:
    text = text or ""
    if not text.strip():
        return ""
    return text if text.strip().endswith(".") else text + "."


def _resolve(schema: Any, refs: dict[str, Any], seen: frozenset = frozenset()) -> tuple[Any, frozenset]:
    """Follow a local `#/components/schemas/X` reference (not cycles: those stay references)."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    name = str(ref).rsplit("/", 1)[-1] if ref else None
    if name and str(ref).startswith("#/components/schemas/") and name in refs and name not in seen:
        return refs[name], seen | {name}
    return schema, seen


def _schema_text(schema: Any, brief: bool = False, in_array: bool = False,
                 refs: dict[str, Any] | None = None, seen: frozenset = frozenset()) -> str:
    """A schema as ToolAlpaca writes it: `Object{a, b: Array[string]}`; `brief` drops scalar types
    and descriptions (output structures), `in_array` names scalar item types. Top-level and
    array-item references stay `#Name` (listed once under components); a property's reference is
    inlined, as in ToolAlpaca's released data."""
    refs = refs or {}
    if not isinstance(schema, dict):
        return ""
    if list(schema) == ["oneOf"] and isinstance(schema["oneOf"], list):
        return " OR ".join(_schema_text(s, brief, in_array, refs, seen) for s in schema["oneOf"])
    if "$ref" in schema:
        return str(schema["$ref"]).replace("/components/schemas/", "")
    kind = schema.get("type", "")
    if kind == "array":
        items = _schema_text(schema.get("items", {}), brief, True, refs, seen)
        return f"Array[{items}]" if brief else f"Array[{items}]. " + _sentence(schema.get("description"))
    if kind == "object":
        text = "Object"
        if isinstance(schema.get("properties"), dict):
            props = []
            for name, sub in schema["properties"].items():
                sub, sub_seen = _resolve(sub, refs, seen)
                sub_text = _schema_text(sub, brief, False, refs, sub_seen)
                props.append(f"{name}: {sub_text}" if sub_text else name)
            text += "{" + ", ".join(props) + "}"
        return text if brief else f"{text}. " + _sentence(schema.get("description"))
    if in_array:
        return str(kind)
    if brief:
        return ""
    enum = f"One of: [{', '.join(str(v) for v in schema['enum'])}]." if "enum" in schema else ""
    parts = [f"{kind}." if kind else "", _sentence(schema.get("description")), enum]
    return " ".join(p for p in parts if p).strip()


def _operations(doc: dict[str, Any]):
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method, op in item.items():
            if method in HTTP_METHODS and isinstance(op, dict):
                default = path[1:].replace("/", "_").replace("{", "").replace("}", "") + "_" + method
                yield op.get("operationId", default), path, method, op, shared


def _inputs(op: dict[str, Any], shared: list, refs: dict[str, Any]) -> list[str]:
    params: dict[str, dict[str, Any]] = {}
    for p in list(op.get("parameters") or []) + list(shared):
        if isinstance(p, dict) and "name" in p:
            params[p["name"]] = {"text": _schema_text(p.get("schema", {}), refs=refs) + " "
                                 + _sentence(p.get("description")),
                                 "required": p.get("required")}
    body = op.get("requestBody")
    if isinstance(body, dict) and isinstance(body.get("content"), dict) and body["content"]:
        media = next(iter(body["content"].values())) or {}
        schema = media.get("schema") if isinstance(media, dict) else None
        schema, seen = _resolve(schema, refs)  # a body's fields are the call's arguments: name them
        if isinstance(schema, dict):
            if "$ref" in schema:
                params["$ref"] = {"text": str(schema["$ref"]).replace("/components/schemas/", ""), "ref": True}
            for name, sub in (schema.get("properties") or {}).items():
                sub, sub_seen = _resolve(sub, refs, seen)
                params[name] = {"text": _schema_text(sub, refs=refs, seen=sub_seen)}
            for name in schema.get("required") or []:
                if name in params:
                    params[name]["required"] = True
    out = []
    for name, p in params.items():
        if p.get("ref"):
            out.append(p["text"])
        else:
            out.append(f'"{name}": "{"Required. " if p.get("required") else ""}{p["text"]}"')
    return out


def _output(op: dict[str, Any], refs: dict[str, Any]) -> tuple[str, str, str]:
    responses = op.get("responses") or {}
    ok = [code for code in responses if str(code).startswith("2")]
    if not ok or not isinstance(responses[ok[0]], dict):
        return "", "", ""
    resp = responses[ok[0]]
    content_type, structure = "", ""
    if isinstance(resp.get("content"), dict) and resp["content"]:
        content_type = next(iter(resp["content"]))
        media = resp["content"][content_type] or {}
        if isinstance(media, dict) and "schema" in media:
            structure = _schema_text(media["schema"], brief=True, refs=refs)
    return _sentence(resp.get("description")), content_type, structure


def nl_documentation(doc: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, list[str]]]:
    """(NLDocumentation text, per-function descriptions + "components", function -> [path, method])
    in the layout of ToolAlpaca's `eval_simulated.json`."""
    text, per_function, projection = "", {}, {}
    schemas = (doc.get("components") or {}).get("schemas") or {}
    for name, path, method, op, shared in _operations(doc):
        projection[name] = [path, method]
        summary = op["summary"] if "summary" in op else op.get("description", "")
        out_desc, out_type, out_structure = _output(op, schemas)
        body = (f"{summary}\nParameters: {{{', '.join(_inputs(op, shared, schemas))}}}\n"
                f"Output: {out_desc}\n - Format: {out_type}\n - Structure: {out_structure}\n")
        text += f"{name}: {body}"
        per_function[name] = body.strip()
    components = ""
    if schemas:
        components = "\nThe detailed output format for the tools is outlined below:\n" + "".join(
            f"#{name}: {_schema_text(s, brief=True, refs=schemas, seen=frozenset([name]))}\n"
            for name, s in schemas.items())
    per_function["components"] = components.strip()
    return text + components, per_function, projection


# --- checking one attempt's document ----------------------------------------------------------

def check_openapi(text: str, entry: CatalogueEntry) -> tuple[dict[str, Any], Tool]:
    """Parse, validate (openapi-spec-validator, through the shared OpenAPI importer) and import one
    attempt's document; BuildError says what is wrong, in words the LLM can act on."""
    try:
        doc = extract_json(text)
    except ValueError as e:
        raise BuildError(f"the reply holds no usable JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BuildError("the document must be a JSON object, not a list")
    if not str(doc.get("openapi", "")).startswith("3."):
        raise BuildError("the document must start with \"openapi\": \"3.0.0\"")
    if not any(True for _ in _operations(doc)):
        raise BuildError("the document defines no operations under 'paths'")
    try:
        tool = tool_from_openapi(doc, entry)
    except OpenAPIError as e:
        raise BuildError(f"OpenAPI validation failed {e}") from None
    except Exception as e:  # an importer bug on odd input is still this document's failure
        raise BuildError(f"the document could not be converted to functions: {type(e).__name__}: {e}") from None
    if not tool.functions:
        raise BuildError("the document yields no callable functions")
    return doc, tool


def tool_from_openapi(doc: dict[str, Any], entry: CatalogueEntry) -> Tool:
    """The shared importer, with function names as ToolAlpaca's projection gives them."""
    _, _, projection = nl_documentation(doc)
    by_route = {(path, method): name for name, (path, method) in projection.items()}
    tool = openapi_tool(doc, name=entry.name, source=SOURCE, projection=by_route)
    return tool.model_copy(update={"id": tool_id(entry.name), "name": entry.name,
                                   "category": entry.category or tool.category,
                                   "description": entry.description or tool.description,
                                   "auth": entry.auth or tool.auth})


# --- the builder ------------------------------------------------------------------------------

def split_introduction(text: str) -> tuple[str, str]:
    """(introduction, function list) from the first reply; the list follows a `Functions:` line."""
    m = re.search(r"^\W*functions?\W*:?\W*$|^\W*functions?\s*:", text, re.IGNORECASE | re.MULTILINE)
    if not m:
        return text.strip(), ""
    intro = re.sub(r"^\W*introduction\W*:?", "", text[:m.start()], flags=re.IGNORECASE).strip()
    return intro, text[m.end():].strip()


def _reject(entry: CatalogueEntry, reason: str, stage: str) -> Reject:
    return Reject(id=f"{stage}:{entry.id}", stage=stage, source=entry.name, reason=reason,
                  record=entry.model_dump_json()[:2000])


async def build_tool(entry: CatalogueEntry, llm: ChatModel, cfg: ToolsetsConfig, *, stage: str) -> Tool | Reject:
    """One catalogue entry to a validated Tool, or a Reject with every attempt's reason (`stage`: the
    worker's, naming its calls and rejects)."""
    tag = CallTag(stage=stage, episode=entry.id, role="builder")
    fields = dict(api_name=entry.name, description=entry.description, category=entry.category or "unknown",
                  link=entry.link or "unknown")
    try:
        reply = await llm.chat([{"role": "user", "content": render("toolset_intro", **fields)}],
                               max_tokens=cfg.max_tokens, tag=tag)
    except LLMError as e:
        return _reject(entry, f"catalogue entry {entry.name!r}: introduction call failed: {e}", stage)
    introduction, functions = split_introduction(reply.content)
    if not introduction and not functions:
        return _reject(entry, f"catalogue entry {entry.name!r}: the LLM wrote no introduction", stage)

    first = {"role": "user", "content": render("toolset_openapi", **fields, introduction=introduction,
                                               functions=functions or "(derive them from the introduction)")}
    messages = [first]
    attempts: list[dict[str, Any]] = []
    for attempt in range(1, cfg.max_attempts + 1):
        try:
            reply = await llm.chat(messages, response_format={"type": "json_object"},
                                   max_tokens=cfg.max_tokens, tag=tag)
        except LLMError as e:
            attempts.append({"attempt": attempt, "error": f"LLM call failed: {e}"})
            continue
        try:
            doc, tool = check_openapi(reply.content, entry)
        except BuildError as e:
            attempts.append({"attempt": attempt, "error": str(e)})
            # only the latest document and its complaint: keeps the prompt inside small contexts
            messages = [first, {"role": "assistant", "content": reply.content},
                        {"role": "user", "content": render("toolset_fix", error=str(e))}]
            continue
        attempts.append({"attempt": attempt, "error": None})
        text, per_function, projection = nl_documentation(doc)
        extra = {**tool.extra, "attempts": attempts, "Introduction": introduction, "Functions": functions,
                 "Link": entry.link, "Function_Description": per_function, "Function_Projection": projection}
        return tool.model_copy(update={"openapi": doc, "nl_documentation": text, "extra": extra})
    lines = "; ".join(f"attempt {a['attempt']}: {a['error']}" for a in attempts)
    return _reject(entry, f"catalogue entry {entry.name!r}: no valid OpenAPI document after "
                          f"{cfg.max_attempts} attempts: {lines}", stage)
