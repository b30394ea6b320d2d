"""Config profiles: `preset: <name>` in a run config merges `<name>.yaml` from here *under* the
user's YAML (the user's keys win, key by key). A preset sets the defaults that reproduce a
reference project's behaviour; the README's Fidelity table says which key does what and which test
proves it."""
from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml"))


def preset(name: str) -> dict[str, Any]:
    path = resources.files(__package__).joinpath(f"{name}.yaml")
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(names())}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def merge_under(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, recursively for mappings (lists and scalars are replaced)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge_under(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """The run config's mapping with its preset (if it names one) merged underneath."""
    name = data.get("preset")
    if not name:
        return data
    return merge_under(preset(str(name)), data)
