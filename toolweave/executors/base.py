"""What every executor returns and the protocols executors and caches implement."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from toolweave.schemas import Function, Tool

TIMEOUT = 408  # the status code we give a call that ran out of time (client side)
NO_RESPONSE = 0  # no HTTP exchange happened (blocked host, connection refused, executor failure)


class ExecutorUnavailable(RuntimeError):
    """The machinery behind a simulated tool failed (its LLM after all retries, the shared response
    cache): not an API answer, so it fails the episode instead of becoming an observation the
    model would be trained to react to."""


@dataclass
class Observation:
    status_code: int
    body: str
    error: str | None = None
    latency_s: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status_code < 300

    def to_json(self) -> str:
        return json.dumps({"status_code": self.status_code, "body": self.body, "error": self.error},
                          ensure_ascii=False)


class Executor(Protocol):
    async def execute(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> Observation: ...


class ResponseCache(Protocol):
    """Tool responses by call key. `put` keeps the first value written for a key."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str) -> None: ...


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def cache_key(tool: Tool, function: Function, arguments: dict[str, Any]) -> str:
    """(tool id, function, canonical arguments): equal calls share one response."""
    digest = hashlib.sha256(canonical_json(arguments).encode()).hexdigest()[:32]
    return f"{tool.id}/{function.name}/{digest}"


class MemoryResponseCache:
    """In-process cache (tests, one-off runs): same first-write-wins rule as the SQLite one."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def put(self, key: str, value: str) -> None:
        self.data.setdefault(key, value)
