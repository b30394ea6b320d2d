"""What the rest of the core sees of the LLM layer: a request in, a parsed reply and usage out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from toolweave.secrets import redact


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls


@dataclass
class ChatReply:
    """One assistant turn. `message` is an OpenAI chat message dict: role, content, and
    `tool_calls` [{id, type: function, function: {name, arguments (JSON text)}}] when any."""

    message: dict[str, Any]
    finish_reason: str | None
    usage: Usage
    model: str = ""
    latency_s: float = 0.0
    choices: list[dict[str, Any]] = field(default_factory=list)  # all n messages when n > 1

    @property
    def content(self) -> str:
        return self.message.get("content") or ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return self.message.get("tool_calls") or []


@dataclass
class CallTag:
    """Who is asking: accounting is kept per stage and per episode."""

    stage: str = ""
    episode: str = ""
    role: str = "default"


class ChatModel(Protocol):
    """The interface agents, searches and judges use (toolweave.llm.client.LLMClient implements it)."""

    async def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                   tool_choice: str | dict[str, Any] | None = None,
                   response_format: dict[str, Any] | None = None,
                   json_schema: dict[str, Any] | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   stop: list[str] | None = None, n: int = 1,
                   tag: CallTag | None = None) -> ChatReply: ...


class LLMError(RuntimeError):
    """The final error after retries: names the endpoint, the attempts and the last cause."""

    def __init__(self, message: str, *, endpoint: str = "", attempts: int = 0, cause: str = ""):
        super().__init__(redact(message))  # servers echo keys ("Incorrect API key provided: sk-...")
        self.endpoint, self.attempts, self.cause = endpoint, attempts, redact(cause)
