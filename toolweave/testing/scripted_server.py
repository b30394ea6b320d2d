"""A scripted OpenAI-compatible chat server for tests and benchmarks (never a product default).

Runs a plain Starlette app under uvicorn (uvloop + httptools where installed) on 127.0.0.1 (a random free port) in a background thread with its own
event loop. Handlers are async and never block, so one server holds ~1,000 concurrent requests
with injected latency. Faults are injected by request index or by a function:

    with ScriptedServer(replies=["hi", {"tool_calls": [...]}], faults={0: 429}) as srv:
        client = AsyncOpenAI(base_url=srv.base_url, api_key="x")
        srv.requests      # request bodies received, in order
        srv.max_in_flight # the most chat requests it held at once

Fault kinds: 429 (with Retry-After), 500, 503 (any int status), "hang" (never answers until the
server closes), "drop" (closes the socket without a response), "malformed_json" (invalid JSON
body), "missing_choices" (valid JSON without `choices`). A dict {"kind": 429, "retry_after": 2}
sets the Retry-After header (seconds; default 0).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from toolweave.llm.engine import bound_socket

try:  # benchmarks share 2 cores between this server and the pipeline: its CPU per request counts
    import uvloop
    _new_loop = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _new_loop = asyncio.new_event_loop

Reply = str | dict[str, Any]
FaultSpec = int | str | dict[str, Any]


@dataclass
class Fault:
    kind: int | str  # an HTTP status, or "hang" / "drop" / "malformed_json" / "missing_choices"
    retry_after: float | None = 0.0

    @classmethod
    def parse(cls, spec: FaultSpec | "Fault") -> "Fault":
        if isinstance(spec, Fault):
            return spec
        if isinstance(spec, dict):
            return cls(_kind(spec["kind"]), spec.get("retry_after", 0.0))
        return cls(_kind(spec))


_NAMED = ("hang", "drop", "malformed_json", "missing_choices")


def _kind(k: int | str) -> int | str:
    if isinstance(k, str) and k.isdigit():
        k = int(k)
    if not (isinstance(k, int) and 400 <= k < 600) and k not in _NAMED:
        raise ValueError(f"unknown fault {k!r}: use an HTTP status 4xx/5xx or one of {_NAMED}")
    return k


def estimate_tokens(text: str) -> int:
    """About 4 characters a token: plausible usage numbers without a tokenizer."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for m in body.get("messages") or []:
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content or "")
        total += 4 + estimate_tokens(text) + estimate_tokens(json.dumps(m.get("tool_calls") or ""))
    if body.get("tools"):
        total += estimate_tokens(json.dumps(body["tools"]))
    return total


def _message(reply: Reply) -> dict[str, Any]:
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    msg = {"role": "assistant", "content": None, **reply}
    calls = []
    for i, call in enumerate(msg.get("tool_calls") or []):
        fn = dict(call.get("function") or {})
        args = fn.get("arguments", "{}")
        fn["arguments"] = args if isinstance(args, str) else json.dumps(args)
        calls.append({"id": call.get("id") or f"call_{uuid.uuid4().hex[:8]}_{i}", "type": "function",
                      "function": fn})
    if calls:
        msg["tool_calls"] = calls
    return msg


class ScriptedServer:
    def __init__(self, replies: list[Reply] | None = None,
                 handler: Callable[[dict[str, Any]], Any] | None = None, latency_s: float = 0.0,
                 faults: dict[int, FaultSpec] | Callable[[int, dict[str, Any]], FaultSpec | None] | None = None,
                 model: str = "scripted"):
        self._replies = list(replies or [])
        self._handler = handler
        self.latency_s = latency_s
        self._faults = faults
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # request headers, same order as `requests`
        self.in_flight = 0
        self.max_in_flight = 0
        self.answered = 0
        self.faults_served: list[tuple[int, int | str]] = []  # (request index, fault kind)
        self.port = 0
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self.app = self._build_app()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "ScriptedServer":
        sock = bound_socket()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, backlog=4096,
                                timeout_graceful_shutdown=2, timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True,
                                        name=f"scripted-server-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("scripted server did not start")
            time.sleep(0.01)
        return self

    def _run(self, sock: socket.socket) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._closing = asyncio.Event()
            await self._server.serve(sockets=[sock])
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(main())

    def close(self) -> None:
        if self._server is None:
            return
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)  # wake hung requests
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._server = None

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- scripting ---------------------------------------------------------------------------

    def add_replies(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def _fault_for(self, index: int, body: dict[str, Any]) -> Fault | None:
        if self._faults is None:
            return None
        spec = self._faults(index, body) if callable(self._faults) else self._faults.get(index)
        return None if spec is None else Fault.parse(spec)

    async def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._handler is not None:
            reply = self._handler(body)
            return await reply if inspect.isawaitable(reply) else reply
        if not self._replies:
            raise LookupError("scripted server ran out of replies")
        return self._replies.pop(0)

    # --- app ---------------------------------------------------------------------------------

    def _build_app(self) -> "_TransportExposer":
        # plain Starlette routes, no FastAPI request-model layer: about half the CPU per request
        async def models(request: Request):
            return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model",
                                                              "owned_by": "toolweave"}]})

        async def chat(request: Request):
            raw = await request.body()
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                return JSONResponse({"error": {"message": "request body is not JSON"}}, status_code=400)
            index = len(self.requests)
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await self._answer(index, body, request)
            finally:
                self.in_flight -= 1

        app = Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                                Route("/v1/chat/completions", chat, methods=["POST"])])
        return _TransportExposer(app)

    async def _answer(self, index: int, body: dict[str, Any], request: Request) -> Response:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        fault = self._fault_for(index, body)
        if fault is not None:
            self.faults_served.append((index, fault.kind))
            return await self._serve_fault(fault, request)
        try:
            replies = [await self._next_reply(body) for _ in range(int(body.get("n") or 1))]
        except LookupError as e:
            return JSONResponse({"error": {"message": str(e)}}, status_code=500)
        self.answered += 1
        messages = [_message(r) for r in replies]
        completion = sum(estimate_tokens((m.get("content") or "") + json.dumps(m.get("tool_calls") or ""))
                         for m in messages)
        usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": completion}
        usage["total_tokens"] = usage["prompt_tokens"] + completion
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        model = body.get("model") or self.model
        if body.get("stream"):
            return StreamingResponse(self._stream(cid, model, messages[0], usage, body),
                                     media_type="text/event-stream")
        choices = [{"index": i, "message": m, "logprobs": None,
                    "finish_reason": "tool_calls" if m.get("tool_calls") else "stop"}
                   for i, m in enumerate(messages)]
        return JSONResponse({"id": cid, "object": "chat.completion", "created": int(time.time()),
                             "model": model, "choices": choices, "usage": usage})

    async def _stream(self, cid, model, msg, usage, body):
        def chunk(delta, finish=None, usage_=None):
            c = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                 "choices": [] if usage_ else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage_:
                c["usage"] = usage_
            return f"data: {json.dumps(c)}\n\n"
        yield chunk({"role": "assistant", "content": ""})
        for word in (msg.get("content") or "").split(" "):
            yield chunk({"content": word + " "})
        if msg.get("tool_calls"):
            yield chunk({"tool_calls": [{"index": i, **c} for i, c in enumerate(msg["tool_calls"])]})
        yield chunk({}, "tool_calls" if msg.get("tool_calls") else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield chunk({}, usage_=usage)
        yield "data: [DONE]\n\n"

    async def _serve_fault(self, fault: Fault, request: Request) -> Response:
        kind = fault.kind
        if isinstance(kind, int):
            headers = {"retry-after": f"{fault.retry_after:g}"} if kind == 429 and fault.retry_after is not None else {}
            return JSONResponse({"error": {"message": f"injected fault {kind}", "type": "injected"}},
                                status_code=kind, headers=headers)
        if kind == "malformed_json":
            return Response(b'{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        if kind == "missing_choices":
            return JSONResponse({"id": "chatcmpl-broken", "object": "chat.completion", "model": self.model})
        if kind == "hang":
            await self._closing.wait()
        # "drop" (and a hang woken at shutdown): close the socket without writing a response.
        transport = request.scope.get("toolweave.transport")
        if transport is not None:
            transport.close()
        await asyncio.sleep(0.05)  # let uvicorn see the disconnect, so the reply below is discarded
        return Response(status_code=500)


class _TransportExposer:
    """ASGI wrapper: puts uvicorn's transport into the scope. uvicorn's `receive` is a bound
    method of its request cycle, which holds the transport; the "drop" fault closes it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            cycle = getattr(receive, "__self__", None)
            scope["toolweave.transport"] = getattr(cycle, "transport", None)
        await self.app(scope, receive, send)
