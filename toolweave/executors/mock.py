"""Deterministic responses from a function's response examples or response schema (no LLM).

The same call always gets the same body: the generator is seeded with the call's cache key.
"""
from __future__ import annotations

import hashlib
import json
import random
import string
from typing import Any

from toolweave.executors.base import Observation, cache_key
from toolweave.schemas import Function, Tool

MAX_DEPTH = 16
_EMPTY = {"object": {}, "array": [], "string": "", "integer": 0, "number": 0, "boolean": False}


def _rng(seed: str) -> random.Random:
    return random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))


def value_from_schema(schema: Any, rng: random.Random, depth: int = 0, name: str = "") -> Any:
    """A value that validates against a (simple) JSON Schema: examples and enums first."""
    if not isinstance(schema, dict):
        return None
    if depth > MAX_DEPTH:  # deeply nested schemas: the smallest value of the right type
        kind = schema.get("type")
        return _EMPTY.get(kind if isinstance(kind, str) else "", None)
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return rng.choice(schema["examples"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return value_from_schema(schema[key][0], rng, depth + 1, name)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.setdefault("properties", {}).update(part.get("properties") or {})
                merged.setdefault("type", part.get("type"))
        return value_from_schema(merged, rng, depth + 1, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: value_from_schema(v, rng, depth + 1, k) for k, v in props.items()}
    if kind == "array":
        return [value_from_schema(schema.get("items") or {}, rng, depth + 1, name)
                for _ in range(rng.randint(int(schema.get("minItems", 1)),
                                           max(int(schema.get("minItems", 1)), int(schema.get("maxItems", 3)))))]
    if kind == "integer":
        lo, hi = int(schema.get("minimum", 0)), int(schema.get("maximum", 1000))
        return rng.randint(lo, max(lo, hi))
    if kind == "number":
        lo, hi = float(schema.get("minimum", 0)), float(schema.get("maximum", 1000))
        return round(rng.uniform(lo, max(lo, hi)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    if fmt == "date":
        return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt in ("uri", "url"):
        return f"https://example.com/{''.join(rng.choices(string.ascii_lowercase, k=8))}"
    if fmt == "email":
        return f"{''.join(rng.choices(string.ascii_lowercase, k=6))}@example.com"
    word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))
    return f"{name}_{word}" if name else word


class SchemaMockExecutor:
    async def execute(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> Observation:
        rng = _rng(cache_key(tool, function, arguments))
        if function.response_examples:
            return Observation(200, rng.choice(function.response_examples))
        if function.response_schema:
            body = value_from_schema(function.response_schema, rng)
            return Observation(200, json.dumps(body, ensure_ascii=False, default=str))
        # nothing documented: say what was called, so the chain can go on deterministically
        return Observation(200, json.dumps({"function": function.name, "arguments": arguments,
                                            "result": value_from_schema({"type": "string"}, rng)},
                                           ensure_ascii=False, default=str))
