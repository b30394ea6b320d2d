"""What every importer shares: reading a document, making Reject records, comparing tools."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from toolweave import safe_read
from toolweave.schemas import Reject, Tool

STAGE = "toolsets"
RECORD_TEXT_LIMIT = 2000  # characters of the offending input kept in a Reject
YAML_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (".json", *YAML_SUFFIXES)


def clean_text(text: str) -> str:
    """`text` writable as UTF-8: lone surrogates (from a non-UTF-8 file name, or a `\\ud800` escape in
    JSON) become `\\udcff`-style escapes instead of failing the Parquet write."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def record_text(obj: Any, limit: int = RECORD_TEXT_LIMIT) -> str:
    try:
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):  # a document too odd to show (cycles, odd keys)
        text = f"<{type(obj).__name__} that cannot be shown as JSON>"
    text = text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
    return clean_text(text)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def make_reject(source: str | Path, where: str, why: str, record: Any = None) -> Reject:
    """A reject whose reason reads `FILE: WHERE: WHY` on one line. The id is a hash of the
    reason, so importing the same bad input twice gives the same record (reruns skip it)."""
    where = f": {where}" if where else ""
    reason = clean_text(one_line(f"{source}{where}: {why}", 1000))
    digest = hashlib.sha1(reason.encode()).hexdigest()[:16]
    return Reject(id=f"{STAGE}-{digest}", stage=STAGE, source=clean_text(str(source)), reason=reason,
                  record="" if record is None else record_text(record))


def json_pointer(parts) -> str:
    """RFC 6901 pointer of a path of keys/indexes ('' is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def pointer_target(doc: Any, fragment: str) -> tuple[bool, Any]:
    """(found, node) of a JSON pointer fragment (`/components/schemas/Pet`, URL-encoded) in `doc`."""
    node = doc
    fragment = unquote(fragment)
    for part in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


class DocumentError(ValueError):
    """A file that cannot be read as JSON/YAML; the message says where and why."""


MAX_FILE_BYTES = 20_000_000  # a tool description is kilobytes; the largest real query file ~1.2 MB
MAX_DEPTH = 200  # nesting of a document (real OpenAPI documents stay under ~30)
READ_TIMEOUT_S = 30.0  # one file's read, stat and open included (a stuck filesystem)
MAX_NODES = 500_000  # values in a document with YAML aliases expanded (billion laughs)
JSON_SCALARS = (str, int, float, bool, type(None))


class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when built with it
    """SafeLoader without the timestamp type: `example: 2021-01-01` stays the string it is in JSON
    (a date object is no JSON value and would fail every later step)."""


_YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def check_tree(doc: Any, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Raise DocumentError unless `doc` is plain JSON data within the bounds: no value types JSON
    lacks (sets, bytes, dates), no lone surrogates, no nesting deeper than `max_depth`, at most
    `max_nodes` values counting shared (aliased) ones each time. Iterative: deep input cannot
    overflow the stack."""
    stack: list[tuple[Any, tuple]] = [(doc, ())]
    seen = 0
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise DocumentError(f"more than {max_nodes} values (YAML aliases expand too far?)")
        if len(path) > max_depth:
            raise DocumentError(f"nested deeper than {max_depth} levels at {json_pointer(path[:8])}/...")
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, JSON_SCALARS):
                    raise DocumentError(f"at {json_pointer(path)}: a key of type {type(k).__name__}")
                if isinstance(k, str):
                    _check_string(k, path)
                stack.append((v, (*path, k)))
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
        elif isinstance(node, str):
            _check_string(node, path)
        elif not isinstance(node, JSON_SCALARS):
            raise DocumentError(f"at {json_pointer(path)}: a {type(node).__name__} value, which JSON has not")


def _check_string(text: str, path: tuple) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DocumentError(f"at {clean_text(json_pointer(path))}: a lone surrogate in a string "
                            "(not valid Unicode)") from None


def read_document(path: str | Path, timeout_s: float = READ_TIMEOUT_S) -> Any:
    """Parse a JSON or YAML file (by suffix; unknown suffixes try JSON, then YAML); a UTF-8 BOM is
    accepted. Bounded: a regular file only (a FIFO or a device is refused, never waited on), at most
    MAX_FILE_BYTES read within `timeout_s`, then check_tree's bounds."""
    p = Path(path)
    try:
        text = safe_read.read_bytes(p, max_bytes=MAX_FILE_BYTES, timeout_s=timeout_s).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DocumentError(f"cannot read: {e.strerror}") from None
    if not text.strip():
        raise DocumentError("empty file")
    doc = _parse(text, p.suffix.lower())
    check_tree(doc)
    return doc


def _parse(text: str, suffix: str) -> Any:
    try:
        if suffix in YAML_SUFFIXES:
            return _load_yaml(text)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            if suffix == ".json":
                raise DocumentError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        return _load_yaml(text)
    except RecursionError:
        raise DocumentError("nested too deeply to parse") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        if isinstance(e, DocumentError):
            raise
        raise DocumentError(f"cannot parse: {one_line(str(e), 200)}") from None


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise DocumentError(f"invalid YAML{at}: {problem}") from None


def tool_fingerprint(tool: Tool) -> str:
    """Content of a tool without where it came from: equal fingerprints merge silently."""
    row = tool.model_dump(mode="json")
    row["extra"] = {k: v for k, v in row["extra"].items() if k not in ("source_file", "source_files")}
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


@dataclass
class FileResult:
    """What one importer made of one file."""

    format: str
    tools: list[Tool] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
