"""Prompt templates, one file per role: `<name>.txt`.

A template's leading `#` lines document the fields it takes; the rest is the text, with
`{field}` placeholders (str.format, so literal braces are doubled).
"""
from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def template(name: str) -> str:
    text = resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines).strip("\n")


def render(name: str, **fields: object) -> str:
    try:
        return template(name).format(**fields)
    except KeyError as e:
        raise KeyError(f"prompt {name!r} needs field {e.args[0]!r}") from None
