"""Real HTTP calls to a tool's server (httpx), limited to `allow_hosts`.

The key comes from the env var `ExecutorConfig.auth_env[tool.id]` and goes into the header or
query parameter the tool's OpenAPI security scheme names (else `Authorization: Bearer`). It is
scrubbed from anything that could reach an episode: body, error text, the URL.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from toolweave.executors.base import NO_RESPONSE, TIMEOUT, Observation
from toolweave.schemas import Function, Tool

MAX_BODY = 200_000
_PATH_PARAM = re.compile(r"\{([^{}]+)\}")


class RateLimiter:
    """At most `per_s` calls a second across all episodes sharing this executor."""

    def __init__(self, per_s: float):
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def _auth_placement(tool: Tool) -> tuple[str, str]:
    """('header' | 'query', name) from the OpenAPI security schemes; bearer header otherwise."""
    schemes = ((tool.openapi or {}).get("components") or {}).get("securitySchemes") or {}
    for scheme in schemes.values():
        if isinstance(scheme, dict) and scheme.get("type") == "apiKey" and scheme.get("in") in ("header", "query"):
            return scheme["in"], str(scheme.get("name") or "X-API-Key")
    return "header", "Authorization"


class HttpExecutor:
    def __init__(self, *, allow_hosts: list[str], auth_env: dict[str, str] | None = None,
                 timeout_s: float = 30.0, rate_limit_per_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.allow_hosts = {h.lower() for h in allow_hosts}
        self.auth_env = dict(auth_env or {})
        self.timeout_s = timeout_s
        self.limiter = RateLimiter(rate_limit_per_s)
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport,
                                             follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return parts.scheme in ("http", "https") and (host in self.allow_hosts or
                                                      f"{host}:{parts.port}" in self.allow_hosts)

    def request(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> tuple[str, str, dict, dict, Any]:
        args = dict(arguments)
        path = function.path or "/"

        def fill(m: re.Match) -> str:
            return str(args.pop(m.group(1), m.group(0)))

        path = _PATH_PARAM.sub(fill, path)
        url = tool.base_url.rstrip("/") + "/" + path.lstrip("/")
        method = (function.method or "GET").upper()
        params: dict[str, Any] = {}
        headers: dict[str, str] = {}
        body = None
        if method in ("GET", "DELETE", "HEAD"):
            params = {k: v if isinstance(v, str | int | float) else json.dumps(v) for k, v in args.items()}
        else:
            body = args
        return method, url, params, headers, body

    async def execute(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> Observation:
        start = time.monotonic()
        method, url, params, headers, body = self.request(tool, function, arguments)
        if not self.allowed(url):
            return Observation(NO_RESPONSE, "", f"host of {url!r} is not on allow_hosts; call not made")
        secret = os.environ.get(self.auth_env[tool.id], "") if tool.id in self.auth_env else ""
        if secret:
            where, name = _auth_placement(tool)
            if where == "query":
                params[name] = secret
            elif name == "Authorization":
                headers[name] = f"Bearer {secret}"
            else:
                headers[name] = secret

        def scrub(text: str) -> str:
            return text.replace(secret, "***") if secret else text

        await self.limiter.wait()
        try:
            resp = await self.client().request(method, url, params=params, headers=headers, json=body)
        except httpx.TimeoutException:
            return Observation(TIMEOUT, "", f"timeout: {method} {url} took over {self.timeout_s:g} s",
                               time.monotonic() - start)
        except httpx.HTTPError as e:
            return Observation(NO_RESPONSE, "", scrub(f"request failed: {type(e).__name__}: {e}"),
                               time.monotonic() - start)
        text = scrub(resp.text[:MAX_BODY])
        error = None if resp.status_code < 400 else f"HTTP {resp.status_code}"
        return Observation(resp.status_code, text, error, time.monotonic() - start)
