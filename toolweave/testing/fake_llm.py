"""In-process stand-in for ChatModel in unit tests (no HTTP): replies from a list or a function."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from toolweave.llm.types import CallTag, ChatReply, Usage

Reply = str | dict[str, Any]


def tool_call(name: str, arguments: dict | str, call_id: str = "call_0") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


class FakeChatModel:
    """`replies` are consumed in order, or `handler(request) -> reply` decides; a reply is the
    assistant's text or a message dict. Every request is kept in `requests`."""

    def __init__(self, replies: list[Reply] | None = None,
                 handler: Callable[[dict[str, Any]], Reply] | None = None, model: str = "fake"):
        self._replies = list(replies or [])
        self._handler = handler
        self.model = model
        self.requests: list[dict[str, Any]] = []

    async def chat(self, messages, *, tools=None, tool_choice=None, response_format=None,
                   json_schema=None, temperature=None, max_tokens=None, stop=None, n=1,
                   tag: CallTag | None = None) -> ChatReply:
        req = {"messages": [dict(m) for m in messages], "tools": tools, "tool_choice": tool_choice,
               "response_format": response_format, "json_schema": json_schema, "tag": tag,
               "temperature": temperature, "max_tokens": max_tokens}
        self.requests.append(req)
        if self._handler is not None:
            reply = self._handler(req)
        elif self._replies:
            reply = self._replies.pop(0)
        else:
            raise AssertionError("FakeChatModel ran out of scripted replies")
        msg = {"role": "assistant", "content": reply} if isinstance(reply, str) else {"role": "assistant", **reply}
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4
        return ChatReply(message=msg, finish_reason="tool_calls" if msg.get("tool_calls") else "stop",
                         usage=Usage(prompt, len(str(msg.get("content") or "")) // 4 + 1, 1), model=self.model)
