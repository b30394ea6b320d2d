"""benchmarks/traffic.py: recording a solver's chat requests and replaying them (scripted server)."""
import asyncio
import gzip
import json

import pytest

from benchmarks.traffic import (RecordedRequest, RecordingChatModel, batches, read_traffic, replay, spread,
                                write_traffic)
from toolweave.config import EndpointConfig
from toolweave.llm.client import LLMClient
from toolweave.testing.scripted_server import estimate_tokens

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "find a thing",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]


def served_tokens(text: str) -> int:
    """The completion tokens the scripted server reports for a text reply (text + empty tool_calls JSON)."""
    return estimate_tokens(text + json.dumps(""))


def _request(i: int, completion: int, tools=None) -> RecordedRequest:
    return RecordedRequest(messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": f"q{i}"}],
                           tools=tools, tool_choice="required" if tools else None, max_tokens=64,
                           prompt_tokens=10 + i, completion_tokens=completion)


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_recording_round_trips(tmp_path, name):
    source = {"command": "python benchmarks/prefix_cache.py --record x", "model": "smollm2"}
    reqs = [_request(0, 5, TOOLS), _request(1, 7)]
    write_traffic(tmp_path / name, source, reqs)
    assert read_traffic(tmp_path / name) == (source, reqs)
    if name.endswith(".gz"):
        with gzip.open(tmp_path / name, "rt") as f:
            assert json.loads(f.readline()) == {"source": source}


def test_a_line_that_is_no_request_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"source": {}}) + "\n" + json.dumps({"messages": []}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a recorded request"):
        read_traffic(path)


def test_recorder_keeps_the_sent_body_and_the_engines_counts_in_send_order(scripted_server):
    srv = scripted_server(replies=["first reply, longer than the second", "ok"])
    client = LLMClient(EndpointConfig(base_url=srv.base_url, model="m"), default_max_tokens=48)
    rec = RecordingChatModel(client)

    async def run():
        try:
            await rec.chat([{"role": "user", "content": "a"}], tools=TOOLS, tool_choice="required")
            await rec.chat([{"role": "user", "content": "b"}], max_tokens=12)
        finally:
            await client.aclose()

    asyncio.run(run())
    first, second = rec.recorded()
    assert first.messages == srv.requests[0]["messages"] and first.tools == TOOLS
    assert first.tool_choice == "required" and first.max_tokens == 48
    assert first.completion_tokens == served_tokens("first reply, longer than the second")
    assert second.tools is None and second.max_tokens == 12 and second.completion_tokens == served_tokens("ok")
    assert first.prompt_tokens > 0


def test_replay_counts_the_tokens_the_engine_reports(scripted_server):
    # the server answers about max_tokens tokens (4 characters each), except request "q3": one character
    def text(body):
        return "x" if body["messages"][-1]["content"] == "q3" else "abcd" * body["max_tokens"]

    srv = scripted_server(handler=text, latency_s=0.05)
    reqs = [_request(i, completion=3 + i, tools=TOOLS if i % 2 else None) for i in range(6)]
    result = asyncio.run(replay(srv.base_url, "m", reqs, concurrency=2))
    assert result.requests == 6 and result.concurrency == 2
    assert result.expected_tokens == sum(3 + i for i in range(6))
    assert result.useful_tokens == sum(served_tokens(text(b)) for b in srv.requests)
    assert result.useful_tokens < sum(served_tokens("abcd" * r.completion_tokens) for r in reqs)  # q3 came short
    assert 0 < result.tokens_per_s == result.useful_tokens / result.elapsed_s
    assert srv.max_in_flight <= 2
    by_query = {b["messages"][-1]["content"]: b for b in srv.requests}
    for i, r in enumerate(reqs):
        body = by_query[f"q{i}"]
        assert body["max_tokens"] == r.completion_tokens and body["ignore_eos"] is True
        assert body.get("tools") == r.tools and "tool_choice" not in body


def test_batches_keep_recorded_order():
    reqs = [_request(i, 1) for i in range(5)]
    assert [[r.prompt_tokens for r in b] for b in batches(reqs, 2)] == [[10, 11], [12, 13], [14]]


def test_spread_takes_evenly_spaced_requests():
    reqs = [_request(i, 1) for i in range(10)]
    assert [r.prompt_tokens - 10 for r in spread(reqs, 4)] == [0, 2, 5, 7]
    assert spread(reqs, 20) == reqs
