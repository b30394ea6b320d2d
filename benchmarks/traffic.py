"""Chat traffic recorded from a real solve run, and its replay against an OpenAI-compatible engine.

`benchmarks/prefix_cache.py --record FILE.jsonl[.gz]` wraps the solver's LLM client in a
`RecordingChatModel`; `benchmarks/engine_throughput.py --traffic FILE.jsonl` replays it. A file is
JSON lines: the first line `{"source": {...}}` says how it was recorded (command, queries, model),
every other line is one request in the order the solver sent it:

    {"messages": [...], "tools": [...] | null, "tool_choice": ..., "max_tokens": 64,
     "prompt_tokens": 812, "completion_tokens": 37}

`messages`/`tools` are the chat-completions body the client sent; the token counts are the
engine's own `usage` of the reply. Replay makes each request generate exactly its recorded
`completion_tokens` (`max_tokens` = that, `ignore_eos`), so an engine is timed on the solver's
real mix of prompt and output lengths rather than on what it happens to answer this time.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class RecordedRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    max_tokens: int
    prompt_tokens: int
    completion_tokens: int


def _open(path: str | Path, mode: str):
    """A recording is plain JSON lines, or gzipped when its name ends in .gz (the prompts repeat a lot)."""
    return (gzip.open if str(path).endswith(".gz") else open)(path, mode + "t", encoding="utf-8")


def write_traffic(path: str | Path, source: dict[str, Any], requests: list[RecordedRequest]) -> None:
    with _open(path, "w") as f:
        f.write(json.dumps({"source": source}, ensure_ascii=False) + "\n")
        for r in requests:
            f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")


def read_traffic(path: str | Path) -> tuple[dict[str, Any], list[RecordedRequest]]:
    """(source, requests) of a recording; a line that is not a request names the file and line."""
    source: dict[str, Any] = {}
    requests: list[RecordedRequest] = []
    with _open(path, "r") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if n == 1 and set(row) == {"source"}:
                source = row["source"]
                continue
            try:
                requests.append(RecordedRequest(**row))
            except TypeError as e:
                raise ValueError(f"{path}:{n}: not a recorded request ({e})") from e
    return source, requests


class RecordingChatModel:
    """A ChatModel that forwards to `llm` (an `LLMClient`) and keeps each request's body and the
    engine's token counts, in the order the requests were sent."""

    def __init__(self, llm):
        self.llm = llm
        self.model = llm.model
        self.requests: list[RecordedRequest | None] = []

    async def chat(self, messages, *, tag=None, **kw):
        slot = len(self.requests)
        self.requests.append(None)  # send order, whatever order the replies come back in
        reply = await self.llm.chat(messages, tag=tag, **kw)
        body = self.llm.request_kwargs(messages, **kw)
        self.requests[slot] = RecordedRequest(
            messages=body["messages"], tools=body.get("tools"), tool_choice=body.get("tool_choice"),
            max_tokens=body["max_tokens"], prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens)
        return reply

    def recorded(self) -> list[RecordedRequest]:
        """The requests that got a reply (a failed call has nothing to replay)."""
        return [r for r in self.requests if r is not None]


@dataclass
class ReplayResult:
    concurrency: int
    requests: int
    useful_tokens: int  # completion tokens the engine reported, summed
    expected_tokens: int  # the recorded completion tokens, summed
    elapsed_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.useful_tokens / self.elapsed_s


async def replay(base_url: str, model: str, requests: list[RecordedRequest], concurrency: int,
                 timeout_s: float = 900) -> ReplayResult:
    """Send `requests` with at most `concurrency` in flight, each generating its recorded count.

    `tool_choice` is not replayed: a forced choice runs vLLM's structured decoding, which stops at
    the grammar's end whatever `ignore_eos` says and which transformers `generate` has no
    counterpart for; the tools still go in, so the prompt is the solver's."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=timeout_s)
    gate = asyncio.Semaphore(concurrency)

    async def one(r: RecordedRequest) -> int:
        extra = {"tools": r.tools} if r.tools else {}
        async with gate:
            reply = await client.chat.completions.create(
                model=model, messages=r.messages, max_tokens=max(1, r.completion_tokens), temperature=0.0,
                extra_body={"ignore_eos": True}, **extra)
        return reply.usage.completion_tokens

    t0 = time.perf_counter()
    try:
        tokens = await asyncio.gather(*(one(r) for r in requests))
    finally:
        await client.close()
    return ReplayResult(concurrency, len(requests), sum(tokens), sum(max(1, r.completion_tokens) for r in requests),
                        time.perf_counter() - t0)


def spread(requests: list[RecordedRequest], n: int) -> list[RecordedRequest]:
    """`n` requests spread evenly over the recording, in recorded order: a solve sends its episodes'
    first turns first and their longer later turns after, so the first n would miss the mix."""
    if n >= len(requests):
        return list(requests)
    return [requests[i * len(requests) // n] for i in range(n)]


def batches(requests: list[RecordedRequest], size: int) -> list[list[RecordedRequest]]:
    """Consecutive batches of `size` in recorded order (transformers' side of a replay)."""
    return [requests[i:i + size] for i in range(0, len(requests), size)]
