"""The public-apis catalogue (ToolAlpaca's `public_apis.json`): `{count, entries: [...]}` or a bare
list of `{API, Description, Auth, HTTPS, Cors, Link, Category}` -> CatalogueEntry records.

Ids are `tool_id(API)`. The catalogue really has different APIs with one name ("Dog Facts" twice):
identical repeats are merged, different ones get `<id>_2`, `<id>_3`, ... so nothing is lost."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from toolweave.schemas import CatalogueEntry, Reject
from toolweave.toolsets.common import make_reject, one_line
from toolweave.toolsets.naming import tool_id

FIELDS = {"API": "name", "Description": "description", "Category": "category", "Auth": "auth",
          "HTTPS": "https", "Cors": "cors", "Link": "link"}


def _entries(doc: Any) -> list[Any] | None:
    items = doc.get("entries") if isinstance(doc, dict) else doc
    if isinstance(items, list) and items and isinstance(items[0], dict) and "API" in items[0] \
            and "Description" in items[0]:
        return items
    return None


def is_catalogue(doc: Any) -> bool:
    return _entries(doc) is not None


def unique_id(base: str, taken: set[str] | dict) -> str:
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    return out


def import_catalogue(doc: Any, source: str | Path) -> tuple[list[CatalogueEntry], list[Reject], dict]:
    entries: dict[str, CatalogueEntry] = {}
    rejects: list[Reject] = []
    stats = {"merged": 0, "renamed": 0}
    items = _entries(doc) or []
    if isinstance(doc, dict) and isinstance(doc.get("count"), int) and doc["count"] != len(items):
        rejects.append(make_reject(source, "count", f"says {doc['count']} entries, the file has {len(items)}"))
    for i, item in enumerate(items):
        where = f"entry {i}" + (f" ({item.get('API')!r})" if isinstance(item, dict) and item.get("API") else "")
        if not isinstance(item, dict):
            rejects.append(make_reject(source, where, f"expected an object, got {type(item).__name__}", item))
            continue
        if not isinstance(item.get("API"), str) or not item["API"].strip():
            rejects.append(make_reject(source, where, "no API name", item))
            continue
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            rejects.append(make_reject(source, where, f"unknown fields {', '.join(unknown)}", item))
            continue
        data = {FIELDS[k]: v for k, v in item.items()}
        try:
            entry = CatalogueEntry(id=tool_id(item["API"]), **data)
        except ValidationError as e:
            err = e.errors()[0]
            field = next((k for k, v in FIELDS.items() if v == err["loc"][0]), err["loc"][0])
            rejects.append(make_reject(source, where, f"{field}: {one_line(err['msg'])}", item))
            continue
        if entry.id in entries:
            same = entries[entry.id].model_dump(exclude={"id"}) == entry.model_dump(exclude={"id"})
            if same:
                stats["merged"] += 1
                continue
            entry.id = unique_id(entry.id, entries)
            stats["renamed"] += 1
        entries[entry.id] = entry
    return list(entries.values()), rejects, stats
