"""The LLM plays the API (ToolAlpaca's tool executor, StableToolBench's virtual server).

The executor LLM sees the function's documentation, its response schema and up to
`max_examples` example responses (the function's own, then earlier responses of this run);
its answer is forced to `{"status_code", "body"}` JSON. Responses are cached by
(tool id, function, canonical arguments) so the same call always gets the same body.

`simulator="stabletoolbench"` asks as StableToolBench's virtual server does (server/main.py
`fake_response_function_chat`): its system prompt verbatim (leave "error" empty, answer
`{"error", "response"}`), the user text "API Documentation:{tool description, api name and
description}\nAPI Examples:{earlier (input, output) pairs, at most 5 and 2048 characters}\nAPI
Input:{arguments}\n" with Python `str()`, 1024 tokens, JSON-object output.

`simulator="toolalpaca"` asks as ToolAlpaca's simulator does (instance_generation/simulator.py):
prompts/Simulator.txt verbatim with the tool's whole OpenAPI document (`json.dumps`) and a curl
request, temperature 0.5, the reply's "Status Code: ... Response: ... Explanation:" parsed, a
non-2xx answer asked again up to 5 times (a repeated code or a 2xx one is kept). Not reproduced:
its per-API conversation cache, and the request headers of its local HTTP hop.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict, deque
from typing import Any
from urllib.parse import quote, urlencode

from toolweave.executors.base import (NO_RESPONSE, TIMEOUT, ExecutorUnavailable, MemoryResponseCache,
                                      Observation, ResponseCache, cache_key, canonical_json)
from toolweave.llm.types import CallTag, ChatModel, LLMError
from toolweave.parsing import parse_executor_reply
from toolweave.prompts import render
from toolweave.schemas import Function, Tool

REPLY_SCHEMA = {
    "type": "object",
    "properties": {"status_code": {"type": "integer"},
                   "body": {"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}]}},
    "required": ["status_code", "body"],
}
MAX_DOC = 1500  # characters of a tool description shown to the executor
STB_REPLY_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"},
                                                     "response": {"anyOf": [{"type": "string"}, {"type": "object"},
                                                                            {"type": "array"}]}},
                    "required": ["error", "response"]}
TOOLALPACA_TEMPERATURE = 0.5  # instance_generation/simulator.py
TOOLALPACA_RETRIES = 5  # simulator.py: a non-2xx answer is asked again up to 5 times
STB_EXAMPLES = 5  # server/main.py: example_num, then fewer while str(examples) > 2048


class LLMSimulatedExecutor:
    def __init__(self, llm: ChatModel, cache: ResponseCache | None = None, *, max_examples: int = 5,
                 timeout_s: float = 30.0, max_tokens: int | None = None, temperature: float = 0.0,
                 simulator: str = "toolweave"):
        if simulator not in ("toolweave", "stabletoolbench", "toolalpaca"):
            raise ValueError(f"simulator must be 'toolweave', 'stabletoolbench' or 'toolalpaca', got {simulator!r}")
        self.simulator = simulator
        if max_tokens is None:  # StableToolBench's server asks for 1024 tokens a response
            max_tokens = 1024 if simulator == "stabletoolbench" else 512
        self.llm = llm
        self.cache = cache if cache is not None else MemoryResponseCache()
        self.max_examples = max_examples
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        # responses this executor has seen, per function: the "earlier cached examples"
        self.seen: dict[tuple[str, str], deque[str]] = defaultdict(lambda: deque(maxlen=max_examples))
        self.pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (input, output) so far

    def stabletoolbench_messages(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> list[dict]:
        doc = {"tool_description": tool.description or "",
               "api_info": [{"name": function.name, "description": function.description or ""}]}
        pairs = self.pairs[(tool.id, function.name)]
        n = STB_EXAMPLES
        examples = pairs[:n]
        while len(str(examples)) > 2048 and n > 1:
            n -= 1
            examples = pairs[:n]
        user = f"API Documentation:{doc}\nAPI Examples:{str(examples)[:2048]}\nAPI Input:{arguments}\n"
        return [{"role": "system", "content": "\n" + render("executor_system_stabletoolbench")},
                {"role": "user", "content": user}]

    def examples(self, tool: Tool, function: Function) -> list[str]:
        out = list(function.response_examples[: self.max_examples])
        for body in reversed(self.seen[(tool.id, function.name)]):
            if len(out) >= self.max_examples:
                break
            if body not in out:
                out.append(body)
        return out

    def messages(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> list[dict[str, str]]:
        examples = self.examples(tool, function)
        user = render(
            "executor_user", tool=tool.name, tool_description=(tool.description or "")[:MAX_DOC],
            function=function.name, function_description=function.description or "",
            method=function.method or "GET", path=function.path or "/",
            parameters=json.dumps(function.parameters, ensure_ascii=False),
            response_schema=json.dumps(function.response_schema, ensure_ascii=False)
            if function.response_schema else "not documented",
            examples="\n".join(f"- {e[:800]}" for e in examples) or "none",
            arguments=canonical_json(arguments))
        return [{"role": "system", "content": render("executor_system")}, {"role": "user", "content": user}]

    async def execute(self, tool: Tool, function: Function, arguments: dict[str, Any]) -> Observation:
        start = time.monotonic()
        key = cache_key(tool, function, arguments)
        hit = await self.cache.get(key)
        if hit is not None:
            obs = _from_cache(hit)
            obs.cached, obs.latency_s = True, time.monotonic() - start
            self.seen[(tool.id, function.name)].append(obs.body)
            return obs
        if self.simulator == "toolalpaca":
            return await self._toolalpaca(key, tool, function, arguments, start)
        stb = self.simulator == "stabletoolbench"
        messages = self.stabletoolbench_messages(tool, function, arguments) if stb else \
            self.messages(tool, function, arguments)
        try:
            reply = await asyncio.wait_for(
                self.llm.chat(messages, json_schema=STB_REPLY_SCHEMA if stb else REPLY_SCHEMA,
                              temperature=self.temperature, max_tokens=self.max_tokens,
                              tag=CallTag(stage="executor", role="executor")),
                timeout=self.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            return Observation(TIMEOUT, "", f"timeout: the simulated API did not answer in {self.timeout_s:g} s",
                               time.monotonic() - start)
        except LLMError as e:
            raise ExecutorUnavailable(f"the executor LLM failed: {e}") from e
        if stb:
            code, body, error, err = _stb_reply(reply.content)
        else:
            (code, body, err), error = parse_executor_reply(reply.content), ""
        if err:  # garbage is not cached: a retry may do better
            return Observation(code, body, f"executor reply unusable: {err}", time.monotonic() - start)
        entry = {"status_code": code, "body": body, **({"error": error} if error else {})}
        await self.cache.put(key, json.dumps(entry, ensure_ascii=False))
        # first write wins: read back so concurrent callers all return the stored body
        stored = await self.cache.get(key)
        obs = _from_cache(stored) if stored is not None else Observation(code, body)
        obs.latency_s = time.monotonic() - start
        self.seen[(tool.id, function.name)].append(obs.body)
        if stb:
            self.pairs[(tool.id, function.name)].append((str(arguments), json.dumps(
                {"error": obs.error or "", "response": obs.body}, ensure_ascii=False)))
        return obs


    async def _toolalpaca_reply(self, messages: list[dict[str, str]]) -> tuple[int, str] | None:
        reply = await asyncio.wait_for(self.llm.chat(messages, temperature=TOOLALPACA_TEMPERATURE,
                                                     tag=CallTag(stage="executor", role="executor")),
                                       timeout=self.timeout_s)
        return toolalpaca_reply(reply.content)

    async def _toolalpaca(self, key: str, tool: Tool, function: Function, arguments: dict[str, Any],
                          start: float) -> Observation:
        documentation = json.dumps(tool.openapi) if tool.openapi else json.dumps(
            {"name": tool.name, "description": tool.description})
        messages = [{"role": "user", "content": render("executor_toolalpaca", api_name=tool.name,
                                                       documentation=documentation,
                                                       request=curl_request(tool, function, arguments))}]
        try:
            got = await self._toolalpaca_reply(messages)
            seen = {got[0]} if got is not None else set()
            for _ in range(TOOLALPACA_RETRIES if got is not None and not 200 <= got[0] < 300 else 0):
                again = await self._toolalpaca_reply(messages)  # simulator.py: ask again; keep a code
                if again is not None and (again[0] in seen or 200 <= again[0] < 300):  # seen before or a success
                    got = again
                    break
                seen |= {again[0]} if again is not None else set()
        except (asyncio.TimeoutError, TimeoutError):
            return Observation(TIMEOUT, "", f"timeout: the simulated API did not answer in {self.timeout_s:g} s",
                               time.monotonic() - start)
        except LLMError as e:
            raise ExecutorUnavailable(f"the executor LLM failed: {e}") from e
        if got is None:
            return Observation(NO_RESPONSE, "", "executor reply unusable: no \"Status Code:\" / \"Response:\"",
                               time.monotonic() - start)
        await self.cache.put(key, json.dumps({"status_code": got[0], "body": got[1]}, ensure_ascii=False))
        stored = await self.cache.get(key)
        obs = _from_cache(stored) if stored is not None else Observation(*got)
        obs.latency_s = time.monotonic() - start
        return obs


def parse_action_input(text: str) -> Any:
    """ToolAlpaca's parse_json_string: from the first `{` or `[` to the last `}` or `]`, json.loads."""
    starts = [i for i in (text.find("{"), text.find("[")) if i != -1]
    ends = [i for i in (text.rfind("}"), text.rfind("]")) if i != -1]
    if not starts or not ends:
        raise ValueError("no JSON in the action input")
    return json.loads(text[min(starts):max(ends) + 1])


def curl_request(tool: Tool, function: Function, arguments: dict[str, Any]) -> str:
    """The request as ToolAlpaca's simulator shows it: `curl -X METHOD [-d 'json'] URL` against the
    document's first server; path parameters filled in, the rest as query string (GET/DELETE) or body."""
    servers = (tool.openapi or {}).get("servers") or [{}]
    base = str(servers[0].get("url") or tool.base_url or "").rstrip("/")
    path, rest = function.path or "/", dict(arguments)
    for name in re.findall(r"{([^}]+)}", path):
        if name in rest:
            path = path.replace("{" + name + "}", quote(str(rest.pop(name)), safe=""))
    method = (function.method or "GET").upper()
    url = base + path
    if method in ("GET", "DELETE"):
        url += ("?" + urlencode(rest, doseq=True)) if rest else ""
        return f"curl -X {method}   {url}"
    data = f"-d '{json.dumps(rest)}'" if rest else ""
    return f'curl -X {method} -H "Content-Type: application/json" {data} {url}'


def toolalpaca_reply(content: str) -> tuple[int, str] | None:
    """simulator.py's parse: the code after "Status Code:", the JSON after "Response:" (before
    "Explanation:"), compact as its JSONResponse sends it, else {"response": text}."""
    if "Status Code:" not in content or "Response:" not in content:
        return None
    try:
        code = int(content.split("Status Code:")[1].split("Response:")[0].strip())
    except ValueError:
        return None
    text = content.split("Response:")[1].split("Explanation:")[0].strip()
    try:
        body = parse_action_input(text)
    except ValueError:
        body = {"response": text}
    return code, json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _stb_reply(content: str) -> tuple[int, str, str, str | None]:
    """StableToolBench's reply `{"error", "response"}` -> (200, response text, error, problem)."""
    text = content.replace("```json", "").replace("```", "").strip() if "```json" in content else content
    try:
        obj = json.loads(text)
    except ValueError as e:
        return NO_RESPONSE, "", "", f"not JSON: {e}"
    if not isinstance(obj, dict) or "response" not in obj:
        return NO_RESPONSE, "", "", 'no "response" field'
    response = obj["response"]
    body = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
    return 200, body, str(obj.get("error") or ""), None


def _from_cache(value: str) -> Observation:
    try:
        obj = json.loads(value)
        return Observation(int(obj["status_code"]), str(obj["body"]), obj.get("error"))
    except (ValueError, KeyError, TypeError):
        return Observation(NO_RESPONSE, "", f"unreadable cache entry: {value[:80]!r}")
