"""LLMClient reads at most `max_reply_bytes` of a reply: an endless 200 body fails the call quickly
with an error naming the endpoint and the cap, and memory stays bounded."""
from __future__ import annotations

import asyncio
import json
import time
import tracemalloc

import pytest
from aiohttp import web

from toolweave.config import EndpointConfig
from toolweave.llm.client import LLMClient
from toolweave.llm.types import LLMError

USER = [{"role": "user", "content": "hi"}]
CAP = 1024 * 1024
REPLY = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/v1"


def _client(base_url: str, **kw) -> LLMClient:
    return LLMClient(EndpointConfig(base_url=base_url, model="m", timeout_s=20, max_retries=3,
                                    backoff_base_s=0.01, max_reply_bytes=CAP, **kw))


def test_an_endless_reply_fails_the_call_quickly_with_bounded_memory():
    sent = {"bytes": 0, "requests": 0}

    async def endless(request):
        sent["requests"] += 1
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b'{"choices": [' + b" " * 65_000
        try:
            while True:
                await resp.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    async def main():
        runner, url = await _serve(endless)
        try:
            client = _client(url)
            tracemalloc.start()
            t = time.monotonic()
            try:
                with pytest.raises(LLMError) as e:
                    await client.chat(USER)
                took = time.monotonic() - t
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            return e.value, took, peak, url
        finally:
            await runner.cleanup()

    err, took, peak, url = asyncio.run(main())
    assert took < 5, took
    assert f"{CAP} bytes" in str(err) and "max_reply_bytes" in str(err) and url in str(err), str(err)
    assert err.attempts == 1 and sent["requests"] == 1  # not retried: the same request gets the same body
    assert peak < 8 * CAP, peak  # the old client held everything sent (GBs within its timeout)
    assert sent["bytes"] < 64 * CAP, sent["bytes"]


def test_a_declared_length_over_the_cap_is_refused_and_a_reply_under_it_passes():
    pads = [CAP + 10, CAP - 1000]  # served in turn: one over the cap, one just under it

    async def padded(request):
        reply = {**REPLY, "choices": [{"message": {"role": "assistant", "content": "x" * pads.pop(0)},
                                       "finish_reason": "stop"}]}
        return web.Response(body=json.dumps(reply).encode(), content_type="application/json")

    async def main():
        runner, url = await _serve(padded)
        try:
            client = _client(url)
            with pytest.raises(LLMError, match=f"max_reply_bytes cap of {CAP} bytes"):
                await client.chat(USER)
            return await client.chat(USER)
        finally:
            await runner.cleanup()

    reply = asyncio.run(main())
    assert len(reply.message["content"]) == CAP - 1000 and pads == []


def test_the_cap_has_a_sane_default_and_bounds():
    assert EndpointConfig().max_reply_bytes == 16 * 1024 * 1024
    with pytest.raises(ValueError):
        EndpointConfig(max_reply_bytes=10)


def test_a_long_error_reply_is_cut_for_its_message_not_refused():
    async def long_error(request):
        body = json.dumps({"error": {"message": "model overloaded " + "x" * 200_000}}).encode()
        return web.Response(status=400, body=body, content_type="application/json")

    async def main():
        runner, url = await _serve(long_error)
        try:
            with pytest.raises(LLMError, match="HTTP 400: model overloaded") as e:
                await _client(url).chat(USER)
            return e.value
        finally:
            await runner.cleanup()

    err = asyncio.run(main())
    assert "max_reply_bytes" not in str(err) and len(str(err)) < 1000
