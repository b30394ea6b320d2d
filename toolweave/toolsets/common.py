"""What every importer shares: reading a document, making Reject records, comparing tools."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolweave.schemas import Reject, Tool

STAGE = "toolsets"
RECORD_TEXT_LIMIT = 2000  # characters of the offending input kept in a Reject
YAML_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (".json", *YAML_SUFFIXES)


def record_text(obj: Any, limit: int = RECORD_TEXT_LIMIT) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def make_reject(source: str | Path, where: str, why: str, record: Any = None) -> Reject:
    """A reject whose reason reads `FILE: WHERE: WHY` on one line. The id is a hash of the
    reason, so importing the same bad input twice gives the same record (reruns skip it)."""
    where = f": {where}" if where else ""
    reason = one_line(f"{source}{where}: {why}", 1000)
    digest = hashlib.sha1(reason.encode()).hexdigest()[:16]
    return Reject(id=f"{STAGE}-{digest}", stage=STAGE, source=str(source), reason=reason,
                  record="" if record is None else record_text(record))


def json_pointer(parts) -> str:
    """RFC 6901 pointer of a path of keys/indexes ('' is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class DocumentError(ValueError):
    """A file that cannot be read as JSON/YAML; the message says where and why."""


def read_document(path: str | Path) -> Any:
    """Parse a JSON or YAML file (by suffix; unknown suffixes try JSON, then YAML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DocumentError(f"cannot read: {e.strerror}") from None
    if not text.strip():
        raise DocumentError("empty file")
    if p.suffix.lower() in YAML_SUFFIXES:
        return _load_yaml(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if p.suffix.lower() == ".json":
            raise DocumentError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return _load_yaml(text)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
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
