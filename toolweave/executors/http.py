"""Real HTTP calls to a tool's server (httpx), limited to `allow_hosts`.

The key comes from the env var `ExecutorConfig.auth_env[tool.id]` (or the file `<VAR>_FILE` names;
stripped, see toolweave/secrets.py) and goes into the header or query parameter the tool's OpenAPI
security scheme names (else `Authorization: Bearer`). Everything that could reach an episode (body,
error text, the URL) passes `secrets.redact`, which knows the key in all its encodings.

Bounds, so that a hostile or broken server costs little: one deadline (`timeout_s`) for the whole
call, connect to last byte (a server trickling a byte at a time cannot hold it longer); at most
`max_body_bytes` read off the wire and at most as many after decompression (gzip/deflate are
decoded here in bounded steps, so a gzip bomb never inflates past the cap); the body kept is cut
there. Path arguments are percent-encoded (`../../admin` stays inside its path segment); each
argument goes where its `x-in` says (path, query, header, cookie, body).

`allow_hosts` entries: `host` admits the scheme's default port only (80 for http, 443 for https),
`host:port` that port, `host:*` every port. Hosts compare case-insensitively; IPv6 as `[::1]:8080`.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from toolweave.executors.base import NO_RESPONSE, TIMEOUT, Observation
from toolweave.schemas import Function, Tool
from toolweave.secrets import read_secret, redact

MAX_BODY = 200_000  # characters of a body kept in the observation
MAX_BODY_BYTES = 2_000_000  # bytes read off the wire, and bytes after decompression
_PATH_PARAM = re.compile(r"\{([^{}]+)\}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_QUERY_METHODS = ("GET", "DELETE", "HEAD", "OPTIONS")


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


def _allow_entry(entry: str) -> tuple[str, str]:
    """'host' | 'host:port' | 'host:*' | '[v6]:port' -> (host, port or '' for the default or '*')."""
    entry = entry.strip().lower()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+|\*))?|([^:\[\]]+)(?::(\d+|\*))?", entry)
    if not m:
        raise ValueError(f"allow_hosts entry {entry!r} is not host, host:port or host:*")
    return (m.group(1) or m.group(3)), (m.group(2) or m.group(4) or "")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _path_segment(value: Any) -> str:
    """An argument as one path segment: '/' and '%' encoded, and '.'/'..' too (clients and
    servers collapse dot segments, so '..' would climb)."""
    text = quote(_as_text(value), safe="")
    return text.replace(".", "%2E") if text.strip(".") == "" else text


class _BodyTooLarge(Exception):
    pass


class _Decoder:
    """gzip / deflate decoded in steps of at most `cap` bytes; identity passed through."""

    def __init__(self, encoding: str, cap: int):
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self.zlib = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self.zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header, detected
        else:
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        self.cap = cap

    def feed(self, data: bytes, have: int) -> bytes:
        if self.zlib is None:
            return data
        out = b""
        while data:
            room = self.cap - have - len(out) + 1  # > 0: 0 would mean "no limit" to zlib
            if room <= 0:
                raise _BodyTooLarge
            out += self.zlib.decompress(data, room)
            if self.zlib.unconsumed_tail:  # more than the cap would come out of this chunk
                raise _BodyTooLarge
            data = self.zlib.unused_data if self.zlib.eof else b""
            if data:  # a gzip body may be several members one after another
                self.zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        return out


class HttpExecutor:
    def __init__(self, *, allow_hosts: list[str], auth_env: dict[str, str] | None = None,
                 timeout_s: float = 30.0, rate_limit_per_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, max_body_bytes: int = MAX_BODY_BYTES):
        self.allow_hosts = {_allow_entry(h) for h in allow_hosts}
        self.auth_env = dict(auth_env or {})
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.limiter = RateLimiter(rate_limit_per_s)
        self.transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        """This loop's client: pooled connections belong to the loop that opened them, and callers
        run several loops over an executor's life (asyncio.run in scripts and tests)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            self._client, self._loop = httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport,
                                                         follow_redirects=False), loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def allowed(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:  # a port out of range or not a number
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme not in _DEFAULT_PORTS or not host:
            return False
        return any(h == host and (p == "*" or int(p or _DEFAULT_PORTS[parts.scheme]) == port)
                   for h, p in self.allow_hosts)

    def request(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> tuple[str, str, dict, dict, Any]:
        """(method, url, query params, headers, JSON body) of a call; each argument goes where the
        function's schema says (`x-in`), else to the query (GET-like methods) or the body."""
        args = dict(arguments)
        props = (function.parameters or {}).get("properties") or {}
        method = (function.method or "GET").upper()

        def fill(m: re.Match) -> str:
            name = m.group(1)
            return _path_segment(args.pop(name)) if name in args else m.group(0)

        path = _PATH_PARAM.sub(fill, function.path or "/")
        url = tool.base_url.rstrip("/") + "/" + path.lstrip("/")
        params: dict[str, Any] = {}
        headers: dict[str, str] = {}
        cookies: list[str] = []
        body: dict[str, Any] = {}
        for name, value in args.items():
            spec = props.get(name) if isinstance(props.get(name), dict) else {}
            where = spec.get("x-in") or ("query" if method in _QUERY_METHODS else "body")
            if where == "header":
                headers[name] = _as_text(value)
            elif where == "cookie":
                cookies.append(f"{quote(name, safe='')}={quote(_as_text(value), safe='')}")
            elif where == "body":
                body[str(spec.get("x-name") or name)] = value
            else:  # query, or a path parameter the path has no slot for
                params[name] = value if isinstance(value, str | int | float) else json.dumps(value)
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        return method, url, params, headers, (body if body or method not in _QUERY_METHODS else None)

    async def _read(self, resp: httpx.Response) -> tuple[bytes, bool]:
        """The body, decoded, at most max_body_bytes of it; (body, cut)."""
        cap = self.max_body_bytes
        decoder = _Decoder(resp.headers.get("content-encoding", ""), cap)
        chunks: list[bytes] = []
        raw = have = 0
        try:
            async for chunk in resp.aiter_raw():
                raw += len(chunk)
                out = decoder.feed(chunk, have)
                chunks.append(out)
                have += len(out)
                if raw > cap or have > cap:
                    raise _BodyTooLarge
        except _BodyTooLarge:
            return b"".join(chunks)[:cap], True
        return b"".join(chunks), False

    async def execute(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> Observation:
        start = time.monotonic()
        try:
            method, url, params, headers, body = self.request(tool, function, arguments)
        except (TypeError, ValueError) as e:  # arguments that cannot be sent (not JSON-representable)
            return Observation(NO_RESPONSE, "", redact(f"arguments cannot be sent: {type(e).__name__}: {e}"))
        if not self.allowed(url):
            return Observation(NO_RESPONSE, "", redact(f"host of {url!r} is not on allow_hosts; call not made"))
        secret = read_secret(self.auth_env[tool.id]) if tool.id in self.auth_env else ""
        if secret:
            where, name = _auth_placement(tool)
            if where == "query":
                params[name] = secret
            elif name == "Authorization":
                headers[name] = f"Bearer {secret}"
            else:
                headers[name] = secret
        headers.setdefault("Accept-Encoding", "gzip, deflate")  # only what _Decoder decodes within bounds

        await self.limiter.wait()
        try:
            async with asyncio.timeout(self.timeout_s):  # one deadline for the whole call
                async with self.client().stream(method, url, params=params, headers=headers, json=body) as resp:
                    data, cut = await self._read(resp)
        except (TimeoutError, httpx.TimeoutException):
            return Observation(TIMEOUT, "", redact(f"timeout: {method} {url} took over {self.timeout_s:g} s"),
                               time.monotonic() - start)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, TypeError, zlib.error, OSError) as e:
            return Observation(NO_RESPONSE, "", redact(f"request failed: {type(e).__name__}: {e}"),
                               time.monotonic() - start)
        try:
            decoded = data.decode(resp.encoding or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            decoded = data.decode("utf-8", "replace")
        text = redact(decoded)[:MAX_BODY]  # redacted whole, then cut
        error = None if resp.status_code < 400 else f"HTTP {resp.status_code}"
        if cut and error is None:
            error = f"response body over {self.max_body_bytes} bytes; cut there"
        return Observation(resp.status_code, text, error, time.monotonic() - start)
