"""The one async client for OpenAI-compatible endpoints (vLLM, Ray Serve LLM, OpenAI).

A concurrency bound per endpoint, least-in-flight load balancing over several base URLs of one
model, a deadline per attempt, exponential backoff with jitter on 429 / 5xx / connection errors /
timeouts / malformed replies (Retry-After honoured), a final LLMError naming endpoint, attempts and
cause, and token accounting. A reply is streamed and read up to the endpoint's `max_reply_bytes`; a
longer one fails its call at once (an endless body must not fill memory).

The transport is aiohttp, talking the chat-completions wire format directly (as vLLM's own
serving benchmarks do): thousands of episodes share one actor's event loop, and the openai SDK's
request building, httpx layer and pydantic replies cost ~0.7 ms of CPU a call against ~0.2 ms
here (measured with benchmarks/orchestration.py). The request body is sent as given; the reply
is parsed once with json.loads.

asyncio objects (semaphores, HTTP sessions) belong to one event loop, and callers run several
loops over a client's life (asyncio.run in tests and scripts, a thread per Ray actor), so they are kept
per loop.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import threading
import time
import weakref
from typing import Any

import aiohttp

from toolweave.config import ROLES, EndpointConfig, LLMSettings
from toolweave.llm.accounting import Accountant
from toolweave.llm.forced_calls import forced_call_in_text
from toolweave.llm.types import CallTag, ChatReply, LLMError, Usage
from toolweave.secrets import read_secret, redact

log = logging.getLogger("toolweave.llm")


class MalformedReply(Exception):
    """The server answered 200 with a body that is not a chat completion."""


class _Fatal(Exception):
    """A cause not worth retrying (4xx other than 408/409/429)."""


class ReplyTooLarge(_Fatal):
    """A reply body past the endpoint's `max_reply_bytes`: the same request would get it again."""


async def read_at_most(resp: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """The body, streamed, stopping once it passes `cap` bytes: (at most `cap` bytes, whether it was
    longer). An endless body costs `cap` bytes of memory, not all the server sends."""
    body = bytearray()
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > cap:
            return bytes(body[:cap]), True
    return bytes(body), False


def named_tool_choice(tool_choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """"auto" / "required" / "none" pass through; any other string names the function to call."""
    if tool_choice is None or isinstance(tool_choice, dict) or tool_choice in ("auto", "required", "none"):
        return tool_choice
    return {"type": "function", "function": {"name": tool_choice}}


def _args_text(args: Any) -> str:
    if args is None:
        return "{}"
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def _tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Tool calls with arguments as JSON text, whatever the server or the caller gave."""
    out = []
    for i, c in enumerate(calls or []):
        fn = dict(c.get("function") or {})
        fn["arguments"] = _args_text(fn.get("arguments"))
        out.append({"id": c.get("id") or f"call_{i}", "type": c.get("type") or "function", "function": fn})
    return out


def _outgoing(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    msgs = []
    for m in messages:
        if m.get("tool_calls"):
            m = {**m, "tool_calls": _tool_calls(m["tool_calls"])}
        msgs.append(m)
    return msgs


def _message(choice: dict[str, Any], tool_choice: Any = None) -> dict[str, Any]:
    raw = choice["message"]
    out: dict[str, Any] = {"role": "assistant", "content": raw.get("content")}
    if raw.get("tool_calls"):
        out["tool_calls"] = _tool_calls(raw["tool_calls"])
    elif calls := forced_call_in_text(raw, tool_choice):  # a forced call vLLM gave back as text
        out["content"], out["tool_calls"] = None, calls
    return out


def _completion(body: bytes) -> dict[str, Any]:
    """The chat completion in a 200 reply body, as plain JSON (MalformedReply if it is none)."""
    try:
        completion = json.loads(body)
    except ValueError as e:  # invalid JSON or invalid UTF-8
        raise MalformedReply(f"reply body is not JSON: {e}") from e
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not choices or not isinstance(choices, list) or not all(
            isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices):
        raise MalformedReply("reply has no choices")
    return completion


class HTTPStatusError(Exception):
    """The endpoint answered with an HTTP error status."""

    def __init__(self, status: int, body: bytes, retry_after: float | None):
        self.status, self.retry_after = status, retry_after
        # redacted whole, then cut: a cut could leave a key's head that no longer looks like it
        text = redact(body[:64_000].decode("utf-8", "replace"))
        try:  # OpenAI-style {"error": {"message": ...}}
            err = json.loads(body).get("error")
            text = redact(str((err.get("message") if isinstance(err, dict) else err) or text))
        except (ValueError, AttributeError, RecursionError):
            pass
        super().__init__(f"HTTP {status}: {text[:200]}")


def _retry_after(headers: Any) -> float | None:
    """Seconds from Retry-After (or retry-after-ms), if the reply has one."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)  # an HTTP date
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time()) if when else None


def _describe(e: BaseException) -> str:
    if isinstance(e, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    text = redact(str(e))  # library errors may carry request headers
    return text[:300] if isinstance(e, (HTTPStatusError, MalformedReply)) else f"{type(e).__name__}: {text[:200]}"


_RETRIED = (HTTPStatusError, aiohttp.ClientError, OSError, asyncio.TimeoutError, MalformedReply)


class _LoopState:
    """One loop's semaphore and HTTP sessions (one per replica)."""

    def __init__(self, client: "LLMClient"):
        ep = client.endpoint
        self.semaphore = asyncio.Semaphore(ep.max_concurrency)
        # the semaphore bounds requests; the pool may hold one connection for each
        self.sessions = [aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=ep.max_concurrency, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None), headers=client._headers, skip_auto_headers=("User-Agent",),
            raise_for_status=False) for _ in client.base_urls]
        self.urls = [u.rstrip("/") + "/chat/completions" for u in client.base_urls]
        self.closer: Any = None  # see _close_at_loop_shutdown

    async def aclose(self) -> None:
        for s in self.sessions:
            await s.close()


async def _close_at_loop_shutdown(state: _LoopState):
    """An async generator left suspended: asyncio.run's shutdown_asyncgens() closes it on the
    loop's way out, which closes this loop's sessions there (aiohttp warns about sessions that
    were never closed, and callers run many short loops)."""
    try:
        yield
    finally:
        await state.aclose()


def _request_body(kw: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a call's kwargs (extra_body merged in, as the openai SDK does)."""
    extra = kw.get("extra_body")
    if extra is None:
        return kw
    body = {k: v for k, v in kw.items() if k != "extra_body"}
    body.update(extra)
    return body


class LLMClient:
    """ChatModel over one endpoint (one model, one or more replicas)."""

    def __init__(self, endpoint: EndpointConfig, *, accountant: Accountant | None = None,
                 default_temperature: float = 0.0, default_max_tokens: int = 512,
                 jitter_seed: int | None = None):
        self.endpoint = endpoint
        self.model = endpoint.model
        self.base_urls = [endpoint.base_url, *endpoint.extra_base_urls]
        self.accountant = accountant
        self.default_temperature = default_temperature
        self.default_max_tokens = default_max_tokens
        if endpoint.api_key_env:
            key = read_secret(endpoint.api_key_env)  # stripped and registered for redaction
            if not key:
                raise ValueError(f"endpoint {endpoint.base_url} ({endpoint.model}): environment variable "
                                 f"{endpoint.api_key_env} is not set (nor {endpoint.api_key_env}_FILE)")
        else:
            key = "EMPTY"  # local servers ignore it
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                         "User-Agent": "toolweave"}
        self._rng = random.Random(jitter_seed)
        self._lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self.in_flight = [0] * len(self.base_urls)  # per replica, all loops together
        self._rr = 0

    # Pickling (to Ray actors) carries the config, never the key: the worker reads its own env.
    def __getstate__(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "accountant": self.accountant,
                "default_temperature": self.default_temperature, "default_max_tokens": self.default_max_tokens}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("endpoint"), **state)

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_urls={self.base_urls!r})"

    @property
    def name(self) -> str:
        return f"{self.model}@{','.join(self.base_urls)}"

    # --- plumbing ----------------------------------------------------------------------------

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                state = self._states[loop] = _LoopState(self)
                state.closer = _close_at_loop_shutdown(state)  # the loop holds it weakly
                asyncio.ensure_future(state.closer.__anext__(), loop=loop)  # started here: the loop tracks it
            return state

    def _acquire_replica(self) -> int:
        """Least in-flight replica; ties go round-robin."""
        with self._lock:
            n = len(self.base_urls)
            best = min(range(n), key=lambda i: (self.in_flight[(self._rr + i) % n], i))
            idx = (self._rr + best) % n
            self._rr = (idx + 1) % n
            self.in_flight[idx] += 1
            return idx

    def _release_replica(self, idx: int) -> None:
        with self._lock:
            self.in_flight[idx] -= 1

    def backoff_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before retry `attempt` (0-based): Retry-After if the server gave one, else
        base * 2**attempt with jitter in [50%, 100%], both capped at backoff_max_s."""
        ep = self.endpoint
        if retry_after is not None:
            return min(retry_after, ep.backoff_max_s)
        with self._lock:
            jitter = 0.5 + 0.5 * self._rng.random()
        return min(ep.backoff_base_s * (2 ** attempt), ep.backoff_max_s) * jitter

    async def aclose(self) -> None:
        """Close this loop's connection pools (other loops' pools close with their loop)."""
        with self._lock:
            state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.aclose()

    def close(self) -> None:
        """Close every loop's sessions from synchronous code (an actor's teardown): a session
        left open is reported by aiohttp with every connection it holds."""
        from toolweave.aio import finish_on
        with self._lock:
            states, self._states = list(self._states.items()), weakref.WeakKeyDictionary()
        for loop, state in states:
            finish_on(loop, state.aclose())

    def request_kwargs(self, messages, *, tools=None, tool_choice=None, response_format=None,
                       json_schema=None, temperature=None, max_tokens=None, stop=None, n=1) -> dict[str, Any]:
        """The request of one call (the chat-completions body, `extra_body` still apart; tests inspect it)."""
        kw: dict[str, Any] = {
            "model": self.model, "messages": _outgoing(messages),
            "temperature": self.default_temperature if temperature is None else temperature,
            "max_tokens": self.default_max_tokens if max_tokens is None else max_tokens,
        }
        if n != 1:
            kw["n"] = n
        if stop:
            kw["stop"] = stop
        if tools:
            kw["tools"] = tools
        if tool_choice is not None:
            kw["tool_choice"] = named_tool_choice(tool_choice)
        if json_schema is not None:
            if self.endpoint.is_vllm:  # vLLM compiles the schema into a grammar: even a weak model obeys
                kw["extra_body"] = {"structured_outputs": {"json": json_schema}}
            else:
                kw["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "output", "schema": json_schema, "strict": True}}
        elif response_format is not None:
            kw["response_format"] = response_format
        return kw

    # --- the call ----------------------------------------------------------------------------

    async def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                   tool_choice: str | dict[str, Any] | None = None,
                   response_format: dict[str, Any] | None = None,
                   json_schema: dict[str, Any] | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   stop: list[str] | None = None, n: int = 1,
                   tag: CallTag | None = None) -> ChatReply:
        kw = self.request_kwargs(messages, tools=tools, tool_choice=tool_choice, response_format=response_format,
                                 json_schema=json_schema, temperature=temperature, max_tokens=max_tokens,
                                 stop=stop, n=n)
        state = self._state()
        attempts = self.endpoint.max_retries + 1
        cause = ""
        for attempt in range(attempts):
            retry_after = None
            try:
                return await self._attempt(state, kw, tag, attempt)
            except _Fatal as e:
                cause = str(e)
                attempts = attempt + 1
                break
            except _RETRIED as e:
                cause = _describe(e)
                retry_after = getattr(e, "retry_after", None)
            if attempt + 1 < attempts:
                delay = self.backoff_s(attempt, retry_after)
                log.info("%s: attempt %d/%d failed (%s); retrying in %.2fs", self.name, attempt + 1, attempts,
                         redact(cause), delay)
                await asyncio.sleep(delay)
        if self.accountant is not None:
            self.accountant.record_failure(model=self.model, tag=tag, retries=attempts - 1)
        raise LLMError(f"LLM endpoint {self.name}: failed after {attempts} attempt(s); last cause: {cause}",
                       endpoint=self.name, attempts=attempts, cause=cause)

    async def _attempt(self, state: _LoopState, kw: dict[str, Any], tag: CallTag | None, attempt: int) -> ChatReply:
        data = json.dumps(_request_body(kw), ensure_ascii=False).encode()
        async with state.semaphore:
            idx = self._acquire_replica()
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(self.endpoint.timeout_s):  # a deadline for the whole attempt
                    async with state.sessions[idx].post(state.urls[idx], data=data) as resp:
                        cap = self.endpoint.max_reply_bytes  # an error reply past it is cut, not refused
                        declared_over = resp.status < 400 and (resp.content_length or 0) > cap
                        body, longer = (b"", True) if declared_over else await read_at_most(resp, cap)
                        if longer and resp.status < 400:
                            raise ReplyTooLarge(f"reply over the max_reply_bytes cap of {cap} bytes; "
                                                "not read further")
                        if resp.status >= 400:
                            err = HTTPStatusError(resp.status, body, _retry_after(resp.headers))
                            if resp.status < 500 and resp.status not in (408, 409, 429):
                                raise _Fatal(str(err)) from err
                            raise err
            finally:
                self._release_replica(idx)
        latency = time.monotonic() - t0
        completion = _completion(body)
        choices = completion["choices"]
        messages = [_message(c, kw.get("tool_choice")) for c in choices]
        u = completion.get("usage") if isinstance(completion.get("usage"), dict) else {}
        usage = Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0, 1)
        if self.accountant is not None:
            self.accountant.record(usage, model=self.model, tag=tag, latency_s=latency, retries=attempt)
        return ChatReply(message=messages[0], finish_reason=choices[0].get("finish_reason"),
                         usage=usage, model=completion.get("model") or self.model, latency_s=latency,
                         choices=messages)


def clients_for(llm: LLMSettings, base_url: str | None = None, *,
                accountant: Accountant | None = None) -> dict[str, LLMClient]:
    """One client per role (default, assistant, user, executor, judge, builder); roles with the
    same endpoint share one client (one concurrency bound). `base_url` (the embedded engine's)
    serves every role that has no endpoint of its own in `llm.endpoints` (a judge on a hosted
    model stays there), and with `llm.engine == "embedded"` the model is the served name."""
    accountant = accountant or Accountant(llm.prices)
    by_endpoint: dict[str, LLMClient] = {}
    clients = {}
    for role in ROLES:
        ep = llm.endpoint(role)
        if base_url is not None and (role == "default" or role not in llm.endpoints):
            update: dict[str, Any] = {"base_url": base_url, "extra_base_urls": []}
            if llm.engine == "embedded":
                update["model"] = llm.embedded.served_name
            ep = ep.model_copy(update=update)
        key = ep.model_dump_json()
        if key not in by_endpoint:
            by_endpoint[key] = LLMClient(ep, accountant=accountant, default_temperature=llm.temperature,
                                         default_max_tokens=llm.max_tokens)
        clients[role] = by_endpoint[key]
    return clients
