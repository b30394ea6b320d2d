"""ToolBench's API filtering: call every function once with example arguments, keep what works."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from toolweave.executors.base import Executor
from toolweave.schemas import Function, Tool

_PLACEHOLDER = {"string": "test", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}


@dataclass
class ProbeResult:
    tool_id: str
    function: str
    ok: bool
    status_code: int
    latency_s: float
    error: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def example_value(schema: dict[str, Any]) -> tuple[bool, Any]:
    """(documented?, value): default / example_value / example / enum, else a typed placeholder."""
    for key in ("default", "example_value", "example"):
        if key in schema and schema[key] not in (None, ""):
            return True, schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return True, schema["examples"][0]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return True, schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    return False, _PLACEHOLDER.get(kind or "string", "test")


def example_arguments(function: Function) -> dict[str, Any]:
    """Required parameters always; optional ones only where the schema documents a value."""
    props = function.parameters.get("properties") or {}
    required = set(function.required)
    args = {}
    for name, schema in props.items():
        documented, value = example_value(schema if isinstance(schema, dict) else {})
        if name in required or documented:
            args[name] = value
    return args


async def probe_functions(tools: list[Tool], executor: Executor, *, concurrency: int = 8) -> list[ProbeResult]:
    sem = asyncio.Semaphore(concurrency)

    async def probe(tool: Tool, fn: Function) -> ProbeResult:
        args = example_arguments(fn)
        async with sem:
            start = time.monotonic()
            try:
                obs = await executor.execute(tool, fn, args)
            except Exception as e:  # a broken backend marks the function failing, never stops the probe
                return ProbeResult(tool.id, fn.name, False, 0, time.monotonic() - start,
                                   f"{type(e).__name__}: {e}", args)
        return ProbeResult(tool.id, fn.name, obs.ok, obs.status_code, obs.latency_s or time.monotonic() - start,
                           obs.error or (None if obs.ok else f"status {obs.status_code}"), args)

    return list(await asyncio.gather(*(probe(t, f) for t in tools for f in t.functions)))
