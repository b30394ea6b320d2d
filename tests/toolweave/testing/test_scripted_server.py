"""The scripted OpenAI-compatible server itself: endpoints, streaming, faults, concurrency."""
from __future__ import annotations

import asyncio
import json

import openai
import pytest

from toolweave.testing.scripted_server import Fault, ScriptedServer

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

MSGS = [{"role": "user", "content": "hello there"}]


def _post(srv, body=None, timeout=5.0):
    async def go():
        async with httpx.AsyncClient(timeout=timeout) as c:
            return await c.post(f"{srv.base_url}/chat/completions", json=body or {"model": "m", "messages": MSGS})
    return asyncio.run(go())


def test_models_and_a_scripted_tool_call(scripted_server):
    srv = scripted_server(replies=[{"tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}],
                          model="smollm2")

    async def go():
        c = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        models = await c.models.list()
        r = await c.chat.completions.create(model="smollm2", messages=MSGS)
        await c.close()
        return models, r

    models, r = asyncio.run(go())
    assert [m.id for m in models.data] == ["smollm2"]
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "f" and json.loads(call.function.arguments) == {"a": 1}
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_async_handler_sees_the_request(scripted_server):
    async def handler(body):
        await asyncio.sleep(0.01)
        return f"you said {body['messages'][-1]['content']}"

    srv = scripted_server(handler=handler)
    assert _post(srv).json()["choices"][0]["message"]["content"] == "you said hello there"
    assert srv.requests[0]["messages"] == MSGS


def test_streaming_with_usage(scripted_server):
    srv = scripted_server(replies=["one two three"])

    async def go():
        c = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        stream = await c.chat.completions.create(model="m", messages=MSGS, stream=True,
                                                 stream_options={"include_usage": True})
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            usage = chunk.usage or usage
        await c.close()
        return text, usage

    text, usage = asyncio.run(go())
    assert text.strip() == "one two three" and usage.completion_tokens > 0


def test_faults_by_index(scripted_server):
    srv = scripted_server(replies=["fine"], faults={0: {"kind": 429, "retry_after": 2}, 1: 503,
                                                    2: "malformed_json", 3: "missing_choices"})
    r = _post(srv)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert _post(srv).status_code == 503
    with pytest.raises(json.JSONDecodeError):
        _post(srv).json()
    assert "choices" not in _post(srv).json()
    assert _post(srv).json()["choices"][0]["message"]["content"] == "fine"
    assert [k for _, k in srv.faults_served] == [429, 503, "malformed_json", "missing_choices"]


def test_drop_closes_without_a_response(scripted_server):
    srv = scripted_server(faults={0: "drop"})
    with pytest.raises(httpx.RemoteProtocolError):
        _post(srv)


def test_hang_never_answers_until_close():
    srv = ScriptedServer(faults=lambda i, body: "hang").start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            _post(srv, timeout=0.5)
    finally:
        srv.close()  # returns although a request is still hung
    assert srv.requests


def test_out_of_replies_is_a_500(scripted_server):
    r = _post(scripted_server(replies=[]))
    assert r.status_code == 500 and "ran out of replies" in r.text


def test_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        Fault.parse("explode")
    assert Fault.parse("503").kind == 503


@pytest.mark.slow
def test_a_thousand_concurrent_requests_with_one_second_latency(scripted_server):
    n = 1000
    gate: dict = {}

    async def handler(body):
        # answer only once all n requests are held at once (however slowly a loaded client sends them)
        event = gate.setdefault("event", asyncio.Event())
        gate["arrived"] = gate.get("arrived", 0) + 1
        if gate["arrived"] == n:
            event.set()
        await asyncio.wait_for(event.wait(), 120)
        return "ok"

    srv = scripted_server(handler=handler, latency_s=1.0)

    async def go():
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(timeout=180, limits=limits) as c:
            rs = await asyncio.gather(*[c.post(f"{srv.base_url}/chat/completions",
                                               json={"model": "m", "messages": MSGS}) for _ in range(n)])
        return rs

    rs = asyncio.run(go())
    assert all(r.status_code == 200 for r in rs)
    assert srv.max_in_flight == n  # all held at once: async, no thread per request
