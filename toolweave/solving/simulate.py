"""ToolAlpaca's multi-agent simulation: a user agent (states the instruction, answers clarifying
questions from what it held back), an assistant agent (ReAct text or native tool calls) and a tool
executor (through ToolEnv). One instruction -> one Episode.

The episode's `messages` are canonical OpenAI chat messages whatever the protocol: a turn that
names a tool becomes an assistant `tool_calls` message plus its `tool` result (error observations
included: recovering from them is worth learning); a turn that cannot be parsed at all stays out
of `messages` and is kept, with its status, in `extra["steps"]` and `errors`. ReAct runs keep the
raw text of every turn in `extra["react"]`, so the ToolAlpaca training format can be rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from toolweave.config import ExecutorConfig, SimulateConfig
from toolweave.executors.base import ExecutorUnavailable
from toolweave.executors.llm_sim import parse_action_input
from toolweave.llm.types import CallTag, ChatModel, ChatReply, LLMError, Usage
from toolweave.parsing import parse_arguments, parse_react
from toolweave.prompts import render
from toolweave.schemas import Episode, Instruction, Tool
from toolweave.search.env import StepResult, ToolEnv
from toolweave.toolsets.export import FINISH

DONE = "[DONE]"  # the user agent's word for "my request is handled"
REACT_STOP = ["\nObservation:", "Observation:"]  # the executor, not the assistant, writes observations
_ASKS = re.compile(r"\?\s*\W*$|\b(could|can|would) you (please )?(tell|provide|give|share|specify|confirm)\b"
                   r"|\bplease (provide|specify|tell|share|confirm)\b", re.IGNORECASE)
_USER_PREFIX = re.compile(r"^\s*\[?(user|human)\]?\s*:\s*", re.IGNORECASE)
# ToolAlpaca (agent/tools.py): clarifying questions go through a getDetails tool the user agent answers,
# and API results are shown as "Status Code: N. Response: ..." with a retry hint on a non-2xx code
GET_DETAILS = "getDetails"
ALPACA_BAD_JSON = "Invalid JSON format. Please ensure 'Action Input' is a valid JSON object."
ALPACA_LIST = "'Action Input' cannot be a list. Only call one function per action."
ALPACA_NO_QUESTION = ('For `getDetails`, the "Action Input" must be like {Question": "The question to prompt user '
                      'to provide sufficient information."}.')
ALPACA_RETRY_HINT = (". You should choose one of: (1) change the input and retry; (2) return the 'Final Answer' and "
                     "explain what happened; (You must choose this one when the error occurs more than 3 times.) "
                     "(3) call another function.")
ALPACA_SERVER_RETRIES = 3  # agent/tools.py: a 5xx answer is asked again, 3 times in all


def tools_documentation(tools: list[Tool]) -> str:
    """What the ReAct assistant reads: ToolAlpaca's NL documentation where there is one."""
    parts = []
    for t in tools:
        doc = t.nl_documentation or "\n".join(
            f"{f.name}: {f.description}\nParameters: {json.dumps(f.parameters.get('properties', {}), ensure_ascii=False)}"
            for f in t.functions)
        parts.append(f"Tool: {t.name}\nDescription: {t.description}\n{doc.strip()}")
    return "\n\n".join(parts)


def asks_user(text: str) -> bool:
    """Does the assistant's reply ask the user something (a clarifying question)?"""
    return bool(text and _ASKS.search(text.strip()))


@dataclass
class _Run:
    """What one episode accumulates."""

    episode_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)  # canonical
    steps: list[dict[str, Any]] = field(default_factory=list)
    react: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    usage: dict[str, Usage] = field(default_factory=lambda: {"assistant": Usage(), "user": Usage()})
    model: str = ""
    calls: int = 0
    alpaca: "_ToolAlpacaCalls | None" = None  # ToolAlpaca's getDetails / observations, when configured

    def count(self, role: str, reply: ChatReply) -> None:
        self.usage[role].add(reply.usage)
        if role == "assistant" and reply.model:
            self.model = reply.model

    def call_id(self) -> str:
        self.calls += 1
        return f"call_{self.calls}"


async def _call_tool(env: ToolEnv, run: _Run, name: str, arguments: dict[str, Any] | str | None,
                     raw_args: str) -> tuple[str, str | None]:
    """Run one tool call through the environment (which checks the name and the arguments against
    the function's schema) and record it; returns (observation, final answer of a Finish call)."""
    call_id = run.call_id()
    try:
        alpaca = run.alpaca.step(env, run, name, raw_args) if run.alpaca else None
        result = await alpaca if alpaca is not None else await env.step(name, arguments)
    except ExecutorUnavailable:
        raise  # the episode fails and says why (see ToolEnv.step)
    except Exception as e:  # a broken environment is this step's failure, never the episode's crash
        observation, status, code, answer = f"Tool execution failed: {type(e).__name__}: {e}", "error", None, None
    else:
        observation, status, code = str(result.observation), str(result.status), result.status_code
        answer = result.final_answer if result.finish == "give_answer" else None
    if status not in ("ok", "finish_answer"):
        run.errors.append(f"step {len(run.steps) + 1}: {name}: {status}: {observation[:300]}")
    run.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": observation})
    run.steps.append({"index": len(run.steps) + 1, "kind": "tool_call", "status": status, "name": name,
                      "arguments": raw_args, "status_code": code, "observation": observation[:2000]})
    return observation, answer


def _tool_call(call_id: str, name: str, arguments: dict[str, Any] | None, raw: str) -> dict[str, Any]:
    args = json.dumps(arguments, ensure_ascii=False) if arguments is not None else (raw or "")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


async def _ask_user(user: ChatModel, instruction: Instruction, question: str, run: _Run,
                    tag: CallTag) -> str | None:
    """The user agent's answer to the assistant's question; None when it has nothing to add."""
    system = render("user_agent", instruction=instruction.text,
                    hidden_details=instruction.hidden_details or "(nothing beyond the request)", done=DONE)
    try:
        reply = await user.chat([{"role": "system", "content": system}, {"role": "user", "content": question}],
                                tag=CallTag(stage=tag.stage, episode=tag.episode, role="user"))
    except LLMError as e:
        run.errors.append(f"user agent failed: {e}")
        return None
    run.count("user", reply)
    text = _USER_PREFIX.sub("", reply.content).strip()
    if not text or DONE.lower() in text.lower():
        return None
    return text


class _Protocol:
    """How the assistant speaks: one turn in, one parsed turn out."""

    method = ""

    def __init__(self, tools: list[Tool], instruction: Instruction, spec: list[dict[str, Any]]):
        self.spec = spec
        self.llm_messages: list[dict[str, Any]] = []

    async def turn(self, assistant: ChatModel, tag: CallTag, final: bool = False) -> ChatReply:
        raise NotImplementedError


class _ReAct(_Protocol):
    method = "simulate_react"

    def __init__(self, tools: list[Tool], instruction: Instruction, spec: list[dict[str, Any]]):
        super().__init__(tools, instruction, spec)
        names = ", ".join(t["function"]["name"] for t in self.spec)
        documentation = tools_documentation(tools)
        if spec and spec[0]["function"]["name"] == GET_DETAILS:
            documentation = f"{GET_DETAILS}: {spec[0]['function']['description']}\n\n{documentation}"
        self.system = render("simulate_assistant_react", documentation=documentation, tool_names=names)
        self.llm_messages = [{"role": "system", "content": self.system},
                             {"role": "user", "content": instruction.text}]

    async def turn(self, assistant, tag, final=False):
        return await assistant.chat(self.llm_messages, stop=REACT_STOP, tag=tag)


class _FunctionCalling(_Protocol):
    method = "simulate_fc"

    def __init__(self, tools: list[Tool], instruction: Instruction, spec: list[dict[str, Any]]):
        super().__init__(tools, instruction, spec)
        self.llm_messages = [{"role": "system", "content": render("simulate_assistant_fc")},
                             {"role": "user", "content": instruction.text}]

    async def turn(self, assistant, tag, final=False):
        return await assistant.chat(self.llm_messages, tools=self.spec, tool_choice="none" if final else "auto",
                                    tag=tag)


def get_details_function() -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": GET_DETAILS, "description": render("toolalpaca_get_details_tool"),
        "parameters": {"type": "object", "required": ["Question"], "properties": {"Question": {
            "type": "string", "description": "The question to prompt user to provide sufficient information."}}}}}


class _ToolAlpacaCalls:
    """ToolAlpaca's tool side: getDetails answered by the user agent from the chat so far
    (prompts/get_details.txt; the first line is the instruction with its hidden details as a
    "Hint:", as ToolAlpaca's inputs carry them), and API observations as its Tool writes them."""

    def __init__(self, instruction: Instruction, user: ChatModel, tag: CallTag, cfg: SimulateConfig, limit: int):
        hint = f"\nHint: {instruction.hidden_details}" if instruction.hidden_details else ""
        self.history: list[tuple[str, Any]] = [("User", (instruction.text + hint).strip())]
        self.user, self.tag, self.cfg, self.limit = user, tag, cfg, limit

    def step(self, env: ToolEnv, run: _Run, name: str, raw: str):
        """A coroutine giving the StepResult, or None to leave the call to the environment."""
        if name == GET_DETAILS and self.cfg.clarify == "get_details":
            return self._details(run, raw)
        if self.cfg.observation_format == "toolalpaca" and name != FINISH:
            return self._api(env, name, raw)
        return None

    async def _details(self, run: _Run, raw: str) -> StepResult:
        try:
            question = parse_action_input(raw)
        except ValueError:
            return StepResult("invalid_arguments", ALPACA_BAD_JSON, 2)
        if "Question" not in question:
            return StepResult("invalid_arguments", ALPACA_NO_QUESTION, 2)
        self.history.append(("AI", question))
        prompt = render("toolalpaca_get_details") + "\n" + "\n".join(f"[{who}]: {said}" for who, said in self.history)
        try:
            reply = await self.user.chat([{"role": "user", "content": prompt}],
                                         tag=CallTag(stage=self.tag.stage, episode=self.tag.episode, role="user"))
        except LLMError as e:
            run.errors.append(f"user agent failed: {e}")
            return StepResult("error", f"Tool execution failed: the user agent did not answer: {e}", 12)
        run.count("user", reply)
        details = reply.content.strip()
        if details.startswith("[User]:"):
            details = details.split("[User]:", 1)[1].strip()
        details = details.split("[AI]:", 1)[0].strip()
        self.history.append(("User", details))
        return StepResult("ok", details, 0)

    async def _api(self, env: ToolEnv, name: str, raw: str) -> StepResult:
        resolved = env.resolve(name)
        if resolved is None:  # custom_agent_executor.py: CustomInvalidTool
            names = [t["function"]["name"] for t in env.openai_tools if t["function"]["name"] != FINISH]
            if self.cfg.clarify == "get_details":
                names = [GET_DETAILS] + names
            return StepResult("hallucinated_function",
                              f"`{name}` is not a valid action. The action must be one of {names}.", 1)
        try:
            args = parse_action_input(raw)
        except ValueError:
            return StepResult("invalid_arguments", ALPACA_BAD_JSON, 2)
        if isinstance(args, list):
            return StepResult("invalid_arguments", ALPACA_LIST, 2)
        tool, fn = resolved
        for _ in range(ALPACA_SERVER_RETRIES):
            obs = await env.executor.execute(tool, fn, args)
            if obs.status_code < 500:
                break
        message = f"Status Code: {obs.status_code}. Response: {obs.body}"
        ok = 200 <= obs.status_code < 300
        if not ok:
            message += ALPACA_RETRY_HINT
        return StepResult("ok" if ok else "error", message[:self.limit], 0 if ok else 12)


def _default_episode_id(instruction: Instruction, method: str) -> str:
    return "ep-" + hashlib.sha1(f"{instruction.id}\x00{method}".encode()).hexdigest()[:16]


async def simulate_episode(instruction: Instruction, tools: list[Tool], *, assistant: ChatModel, user: ChatModel,
                           executor: Any, cfg: SimulateConfig, episode_id: str | None = None,
                           env_cfg: ExecutorConfig | None = None, stage: str = "") -> Episode:
    """Simulate one instruction to an Episode; malformed output becomes recorded steps, never a crash.
    `stage`: the worker's, accounting the calls (as `toolweave.search.solve_instruction`'s)."""
    env_cfg = env_cfg or ExecutorConfig()
    env = ToolEnv(tools, executor, observation_limit=env_cfg.observation_limit, naming=cfg.naming)
    # ToolAlpaca's assistant ends with a plain answer: ToolBench's Finish is not offered (still honoured)
    spec = [t for t in env.openai_tools if t["function"]["name"] != FINISH]
    if cfg.clarify == "get_details":  # ToolAlpaca lists it first
        spec = [get_details_function()] + spec
    kind = _ReAct if cfg.protocol == "react" else _FunctionCalling
    proto: _Protocol = kind(tools, instruction, spec)
    run = _Run(episode_id or _default_episode_id(instruction, proto.method))
    tag = CallTag(stage=stage, episode=run.episode_id, role="assistant")
    if cfg.clarify == "get_details" or cfg.observation_format == "toolalpaca":
        run.alpaca = _ToolAlpacaCalls(instruction, user, tag, cfg, env_cfg.observation_limit)
    run.messages = [{"role": "system", "content": render("simulate_assistant_fc")},
                    {"role": "user", "content": instruction.text}]

    status, final_answer, tool_steps, user_turns = "", "", 0, 0
    while not status:
        forced = tool_steps >= cfg.max_steps
        if forced:  # out of steps: one last turn that may only answer
            proto.llm_messages.append({"role": "user", "content": render("simulate_final")})
        try:
            reply = await proto.turn(assistant, tag, final=forced)
        except LLMError as e:
            run.errors.append(f"assistant call failed: {e}")
            status = "error"
            break
        run.count("assistant", reply)
        if isinstance(proto, _ReAct):
            answer, acted = await _react_turn(proto, reply, env, run, forced)
        else:
            answer, acted = await _fc_turn(proto, reply, env, run, forced)
        if forced:
            final_answer, status = answer or "", "max_steps"
            if answer:
                run.messages.append({"role": "assistant", "content": answer})
            break
        if acted:
            tool_steps += 1
            if answer is None:
                continue
            run.messages.append({"role": "assistant", "content": answer})
            final_answer, status = answer, "answered"  # the model called Finish(give_answer)
            break
        if answer is None:  # unparseable: it costs a step, so garbage cannot loop forever
            tool_steps += 1
            continue
        run.messages.append({"role": "assistant", "content": answer})
        final_answer = answer
        if asks_user(answer) and user_turns < cfg.max_user_turns:
            said = await _ask_user(user, instruction, answer, run, tag)
            if said is not None:
                user_turns += 1
                run.messages.append({"role": "user", "content": said})
                proto.llm_messages.append({"role": "user", "content": said})
                run.steps.append({"index": len(run.steps) + 1, "kind": "user", "status": "answered",
                                  "question": answer[:2000], "answer": said[:2000]})
                continue
        status = "answered"

    total = Usage()
    for u in run.usage.values():
        total.add(u)
    extra: dict[str, Any] = {"protocol": cfg.protocol, "steps": run.steps, "user_turns": user_turns,
                             "usage": {k: vars(v) for k, v in run.usage.items()},
                             "toolalpaca_docs": toolalpaca_docs(tools)}
    if isinstance(proto, _ReAct):
        extra.update(react=run.react, react_system=proto.system)
    return Episode(id=run.episode_id, instruction_id=instruction.id, method=proto.method, query=instruction.text,
                   status=status, final_answer=final_answer, messages=run.messages, tools=proto.spec,
                   model=run.model, split=instruction.split, llm_calls=total.calls,
                   prompt_tokens=total.prompt_tokens, completion_tokens=total.completion_tokens,
                   errors=run.errors, extra=extra)


async def _react_turn(proto: _ReAct, reply: ChatReply, env: Any, run: _Run, forced: bool) -> tuple[str | None, bool]:
    """(final answer or None, whether a tool was called) for one ReAct turn."""
    raw = reply.content
    step = parse_react(raw)
    entry: dict[str, Any] = {"raw": raw}
    run.react.append(entry)
    proto.llm_messages.append({"role": "assistant", "content": raw.strip()})
    if forced:  # answer only: take the Final Answer, or the text as it stands
        return (step.final_answer if step.final_answer is not None else _strip_markers(raw)), False
    if step.action:
        raw_args = step.action_input or ""
        call_id = f"call_{run.calls + 1}"
        run.messages.append({"role": "assistant", "content": step.thought,
                             "tool_calls": [_tool_call(call_id, step.action, step.arguments, raw_args)]})
        # unparseable input goes to the environment as it is: it answers with invalid_arguments
        observation, answer = await _call_tool(env, run, step.action,
                                               step.arguments if step.arguments is not None else raw_args, raw_args)
        entry["observation"] = observation
        proto.llm_messages.append({"role": "user", "content": f"Observation: {observation}"})
        return answer, True
    if step.final_answer is not None and step.final_answer.strip():
        return step.final_answer.strip(), False
    error = step.error or "empty Final Answer"
    run.errors.append(f"step {len(run.steps) + 1}: unparseable assistant turn: {error}")
    run.steps.append({"index": len(run.steps) + 1, "kind": "parse_error", "status": "parse_error",
                      "error": error, "raw": raw[:2000]})
    feedback = (f"Observation: Invalid format ({error}). Reply with Thought, Action and Action Input, "
                f"or with Thought and Final Answer.")
    entry["observation"] = feedback
    proto.llm_messages.append({"role": "user", "content": feedback})
    return None, False


async def _fc_turn(proto: _FunctionCalling, reply: ChatReply, env: Any, run: _Run,
                   forced: bool) -> tuple[str | None, bool]:
    """(final answer or None, whether a tool was called) for one native tool-calling turn."""
    calls = reply.tool_calls
    if forced or not calls:
        text = reply.content.strip()
        proto.llm_messages.append({"role": "assistant", "content": text})
        if text or forced:
            return text, False
        error = "empty reply without tool calls"
        run.errors.append(f"step {len(run.steps) + 1}: unparseable assistant turn: {error}")
        run.steps.append({"index": len(run.steps) + 1, "kind": "parse_error", "status": "parse_error",
                          "error": error, "raw": ""})
        proto.llm_messages.append({"role": "user", "content": "Please call a function or answer the request."})
        return None, False
    canonical_calls, pending = [], []
    for call in calls:
        fn = call.get("function") or {}
        name, raw_args = str(fn.get("name") or ""), fn.get("arguments")
        arguments, _ = parse_arguments(raw_args)
        call_id = f"call_{run.calls + len(pending) + 1}"
        raw_text = (raw_args if isinstance(raw_args, str) else json.dumps(raw_args)) or ""
        canonical_calls.append(_tool_call(call_id, name, arguments, raw_text))
        pending.append((call.get("id") or call_id, name, arguments if arguments is not None else raw_text, raw_text))
    run.messages.append({"role": "assistant", "content": reply.content or "", "tool_calls": canonical_calls})
    proto.llm_messages.append({"role": "assistant", "content": reply.content or "",
                               "tool_calls": [dict(c, id=p[0]) for c, p in zip(canonical_calls, pending)]})
    answer = None
    for orig_id, name, arguments, raw_text in pending:
        observation, finished = await _call_tool(env, run, name, arguments, raw_text)
        answer = answer or finished
        proto.llm_messages.append({"role": "tool", "tool_call_id": orig_id, "content": observation})
    return answer, True


def _strip_markers(text: str) -> str:
    return re.sub(r"(?im)^\s*(thought|final answer|final response)\s*:\s*", "", text or "").strip()


def toolalpaca_docs(tools: list[Tool]) -> list[list[str]]:
    """[function name, ToolAlpaca's own documentation] of imported ToolAlpaca tools, as its
    build_dataset.py lists them: `Function_Description[name]`, with the tool's `components`
    description appended to its last function (the SFT format `toolalpaca_v1` reads this)."""
    out = []
    for t in tools:
        described = t.extra.get("Function_Description")
        if not isinstance(described, dict):
            continue
        names = [n for n in (t.extra.get("Function_Projection") or {}) if isinstance(described.get(n), str)]
        for k, name in enumerate(names):
            out.append([name, described[name] + (str(described.get("components") or "") if k == len(names) - 1
                                                  else "")])
    return out
