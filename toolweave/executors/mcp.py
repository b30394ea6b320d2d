"""Tools served by MCP servers (the official `mcp` SDK), over stdio or streamable HTTP.

Only allow-listed commands are started and only allow-listed hosts are contacted. One connection per
server is kept open for the executor's life: the SDK's client must be entered and left in one task
(anyio cancel scopes), so a small owner task holds it while episodes call through it concurrently.
"""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from typing import Any
from urllib.parse import urlparse

from toolweave.config import MCPServerConfig, MCPSettings
from toolweave.executors.base import NO_RESPONSE, TIMEOUT, Observation
from toolweave.schemas import Function, Tool
from toolweave.secrets import read_secret, redact

TOOL_ERROR = 500  # the status an MCP result with isError gets (the call reached the tool, the tool failed)
STDERR_TAIL = 500  # characters of a stdio server's stderr quoted when it fails to start


class MCPPolicyError(ValueError):
    """A server the allow-lists do not permit, or a config that names no server."""


def server_key(server: MCPServerConfig) -> str:
    return json.dumps(server.model_dump(mode="json"), sort_keys=True)


def check_allowed(server: MCPServerConfig, settings: MCPSettings) -> None:
    if server.transport == "stdio":
        if not server.command:
            raise MCPPolicyError("stdio MCP server without a command")
        if server.command not in settings.allow_commands:
            raise MCPPolicyError(f"command {server.command!r} is not on mcp.allow_commands; not started")
    else:
        host = urlparse(server.url or "").hostname
        if not host:
            raise MCPPolicyError(f"http MCP server without a valid url: {server.url!r}")
        if host not in settings.allow_hosts:
            raise MCPPolicyError(f"host {host!r} of {server.url!r} is not on mcp.allow_hosts; not contacted")


def server_for(tool: Tool, settings: MCPSettings) -> MCPServerConfig:
    """The tool's server: config `mcp.servers[tool id]` first, else the one a live import recorded."""
    if tool.id in settings.servers:
        return settings.servers[tool.id]
    recorded = tool.extra.get("mcp_server")
    if isinstance(recorded, dict):
        return MCPServerConfig.model_validate(recorded)
    raise MCPPolicyError(f"tool {tool.id!r} names no MCP server (set executor.mcp.servers[{tool.id!r}])")


class MCPConnection:
    """One open client session to one server, usable from any task until `close()`."""

    def __init__(self, server: MCPServerConfig, settings: MCPSettings):
        check_allowed(server, settings)
        self.server, self.settings = server, settings
        self.client: Any = None
        self.error: BaseException | None = None
        self._ready, self._stop = asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8") if server.transport == "stdio" else None

    def _target(self) -> Any:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        if self.server.transport == "http":
            return self.server.url
        # env_from values are secrets (tokens): registered, so the server's echoes of them are redacted
        env = {name: read_secret(name) for name in self.server.env_from if name in os.environ}
        params = StdioServerParameters(command=self.server.command, args=list(self.server.args), env=env or None,
                                       cwd=self.server.cwd)
        return stdio_client(params, errlog=self._stderr)

    async def _own(self) -> None:
        from mcp import Client

        try:
            async with Client(self._target(), read_timeout_seconds=self.settings.timeout_s) as client:
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except BaseException as e:  # noqa: BLE001 - kept and reported by start()/call()
            self.error = e
        finally:
            self.client = None
            self._ready.set()

    def describe(self) -> str:
        s = self.server
        return s.url or "" if s.transport == "http" else " ".join([s.command or "", *s.args])

    def _failure(self) -> str:
        why = f"{type(self.error).__name__}: {self.error}" if self.error else "the connection closed"
        if self._stderr is not None:
            self._stderr.seek(0)
            tail = self._stderr.read()[-STDERR_TAIL:].strip()
            if tail:
                why += f" (server stderr: {tail})"
        return redact(f"MCP server {self.describe()!r} unavailable: {why}")[:1500]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._own())
        try:
            await asyncio.wait_for(self._ready.wait(), self.settings.connect_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            await self.close()
            raise ConnectionError(f"MCP server {self.describe()!r} did not start within "
                                  f"{self.settings.connect_timeout_s:g} s") from None
        if self.client is None:
            raise ConnectionError(self._failure())

    @property
    def alive(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool of every page of `tools/list`, as the wire format writes them (inputSchema, ...)."""
        tools, cursor = [], None
        while True:
            page = await asyncio.wait_for(self.client.list_tools(cursor=cursor), self.settings.timeout_s)
            tools += [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await asyncio.wait_for(self.client.call_tool(name, arguments), self.settings.timeout_s)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.settings.connect_timeout_s)
            except (asyncio.TimeoutError, TimeoutError):
                self._task.cancel()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def result_body(result: Any) -> str:
    """Structured content when the tool gives it, else its text blocks (other blocks named)."""
    if getattr(result, "structured_content", None) is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, default=str)
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        else:
            parts.append(f"[{kind} content: {getattr(block, 'mime_type', '') or 'no mime type'}]")
    return "\n".join(parts)


class MCPExecutor:
    """Executor interface (`execute(tool, function, arguments) -> Observation`) over MCP servers."""

    def __init__(self, settings: MCPSettings):
        self.settings = settings
        for server in settings.servers.values():  # before any call: an error may quote them
            for name in server.env_from:
                read_secret(name)
        self.connections: dict[str, MCPConnection] = {}
        self._lock = asyncio.Lock()

    async def connection(self, server: MCPServerConfig) -> MCPConnection:
        key = server_key(server)
        async with self._lock:  # one connection a server, even when many episodes start together
            conn = self.connections.get(key)
            if conn is None or not conn.alive:
                if conn is not None:
                    await conn.close()
                conn = MCPConnection(server, self.settings)
                self.connections[key] = conn
                await conn.start()
            return conn

    async def execute(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> Observation:
        start = time.monotonic()
        try:
            conn = await self.connection(server_for(tool, self.settings))
        except (MCPPolicyError, ConnectionError) as e:
            return Observation(NO_RESPONSE, "", redact(str(e)), time.monotonic() - start)
        try:
            result = await conn.call(function.name, arguments)
        except (asyncio.TimeoutError, TimeoutError):
            return Observation(TIMEOUT, "", f"timeout: MCP tool {function.name!r} took over "
                                            f"{self.settings.timeout_s:g} s", time.monotonic() - start)
        except Exception as e:  # protocol errors (MCPError), a server that died mid-call
            return Observation(NO_RESPONSE, "", redact(f"MCP call failed: {type(e).__name__}: {e}")[:1000],
                               time.monotonic() - start)
        body = redact(result_body(result))  # redacted whole, then cut
        if result.is_error:
            return Observation(TOOL_ERROR, body, f"MCP tool error: {body[:300]}", time.monotonic() - start)
        return Observation(200, body, None, time.monotonic() - start)

    async def aclose(self) -> None:
        for conn in self.connections.values():
            await conn.close()
        self.connections.clear()
