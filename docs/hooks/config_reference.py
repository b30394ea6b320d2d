"""The configuration reference, generated from the pydantic models of toolweave/config.py.

`make docs` (mkdocs) runs this as a hook: each build writes `reference/configuration.md` from the
models themselves, so a key, its type, default, allowed range or meaning cannot drift from the code.
It also publishes ARCHITECTURE.md as the site's architecture page, for the same reason.
"""
from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from toolweave.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
REFERENCE_PAGE = "reference/configuration.md"
ARCHITECTURE_PAGE = "architecture.md"
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


@dataclass(frozen=True)
class Row:
    """One key of the reference: `section` is its dotted place (`llm.embedded`), `key` the full key."""

    section: str
    model: type[BaseModel]
    name: str
    type: str
    default: str
    allowed: str
    meaning: str
    below: str = ""  # the section a nested model's keys are listed under

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name


def _nested_model(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and how its section is named below the field: `""` for the model
    itself, `.<key>` for a mapping of models, `[]` for a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and args and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return args[1], ".<key>"  # the map's key type is in its own row
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], "[]"
    return None


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}" if args else "map"
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(section)"
    if value == [] and isinstance(value, list) or value == {} and isinstance(value, dict):
        return "`[]`" if isinstance(value, list) else "`{}`"
    return "`" + json.dumps(value, default=str) + "`"


def _allowed(info: FieldInfo) -> str:
    metadata = list(info.metadata)
    # bounds of a mapping's values (e.g. dict[str, NonNegative])
    args = get_args(info.annotation)
    if get_origin(info.annotation) is dict and args and get_origin(args[1]) is Annotated:
        metadata += [m for a in get_args(args[1])[1:] for m in getattr(a, "metadata", [a])]
    bounds = {k: getattr(m, k) for m in metadata for k, _ in _BOUNDS if getattr(m, k, None) is not None}
    return " and ".join(f"{op} {bounds[k]}" for k, op in _BOUNDS if k in bounds)


def rows(model: type[BaseModel] = RunConfig, section: str = "") -> list[Row]:
    """Every key of `model` and of the sections below it, depth first in the models' field order."""
    out: list[Row] = []
    below: list[tuple[type[BaseModel], str]] = []
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        meaning = " ".join((info.description or "").split())
        path = (f"{section}.{name}" if section else name) + nested[1] if nested else ""
        out.append(Row(section, model, name, _type_name(info.annotation), _default(info), _allowed(info),
                       meaning, path))
        if nested:
            below.append((nested[0], path))
    for sub, path in below:
        out += rows(sub, path)
    return out


def anchor(section: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-") or "top-level"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The reference page: one table per section, in the order a config file reads."""
    lines = ["# Configuration reference", "",
             "Generated from the pydantic models in `toolweave/config.py` each time the site is built;",
             "every key of a run config is here, with its type, default, allowed range and meaning.",
             "Keys are written as YAML under their section (`solve:` then `width: 3`) or on the command",
             "line as `section.key=value` overrides (`toolweave run CONFIG solve.width=3`). A key the",
             "models do not know stops the load with an error naming it.", ""]
    by_section: dict[str, list[Row]] = {}
    for row in rows():
        by_section.setdefault(row.section, []).append(row)
    for section, section_rows in by_section.items():
        model = section_rows[0].model
        title = f"`{section}`" if section else "Top level"
        lines += [f"## {title} {{ #{anchor(section)} }}", ""]
        doc = " ".join((model.__doc__ or "").split()) if model.__doc__ != BaseModel.__doc__ else ""
        if doc and section:
            lines += [doc, ""]
        lines += ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for r in section_rows:
            kind = _cell(r.type).replace("section", f"[section](#{anchor(r.below)})") if r.below else _cell(r.type)
            default = "" if r.default == "(section)" else _cell(r.default)
            lines.append(f"| `{r.key}` | {kind} | {default} | {_cell(r.allowed)} | {_cell(r.meaning)} |")
        lines.append("")
    return "\n".join(lines)


_REPO_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+://|#|mailto:)([^)\s]+)\)")


def architecture_page(text: str) -> str:
    """ARCHITECTURE.md as a site page: its links to repository files (which are no pages of the
    site) become the file's name in code, so the strict build checks only the site's own links."""
    return _REPO_LINK.sub(lambda m: m.group(1) if m.group(1).strip("`") == m.group(2)
                          else f"{m.group(1)} (`{m.group(2)}`)", text)


def on_files(files, config):  # mkdocs hook
    from mkdocs.structure.files import File

    files.append(File.generated(config, REFERENCE_PAGE, content=render()))
    architecture = architecture_page((REPO / "ARCHITECTURE.md").read_text())
    files.append(File.generated(config, ARCHITECTURE_PAGE, content=architecture))
    return files
