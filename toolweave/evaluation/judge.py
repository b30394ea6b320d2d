"""The LLM judge: one forced function call (or JSON-schema output) per question, so a verdict parses.

Each question is one of ToolEval's functions (`check_answer_status`, `parse_answer_status`,
`check_task_solvable`, `select_better_answer`) or ToolAlpaca's `report_correctness`. Parsing is
strict: the arguments of a tool call (or, in JSON-schema mode, content that is one JSON object)
with every required field; prose is a failure. A failure (that, a value outside the enum, an
endpoint error) is retried; after the last try `on_failure="stop"` raises JudgeFailure naming the
query and the reasons (ToolEval: 3 tries, then the exception ends eval_pass_rate.py; see
tests/data/reference/toolbench/judge_failures_golden.json), `"unsure"` returns a verdict that is
not ok and the caller scores it Unsure and counts it (`judge_failures` in the summary).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jsonschema

from toolweave.llm.types import CallTag, ChatModel, LLMError, Usage
from toolweave.prompts import render, template

_STATUS = ["Solved", "Unsolved", "Unsure"]
_TASK = ["Solvable", "Unsolvable", "Unsure"]
_YNU = ["Yes", "No", "Uncertain"]

# function -> (prompt template, the fields it returns: name -> JSON schema)
FUNCTIONS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "check_answer_status": ("judge_check_answer_status", {"answer_status": {"type": "string", "enum": _STATUS}}),
    "parse_answer_status": ("judge_parse_answer_status", {"answer_status": {"type": "string", "enum": _STATUS}}),
    "check_task_solvable": ("judge_check_task_solvable", {"task_status": {"type": "string", "enum": _TASK}}),
    "select_better_answer": ("judge_select_better_answer", {"index": {"type": "integer", "enum": [0, 1]}}),
    "report_correctness": ("toolalpaca_eval_correctness", {
        "process_correctness": {"type": "string", "enum": _YNU},
        "final_response_correctness": {"type": "string", "enum": _YNU}}),
}
_DESCRIPTIONS = {
    "check_answer_status": "Return the answer_status of the answer.",
    "parse_answer_status": "Parse the answer with its execution details and return its answer_status.",
    "check_task_solvable": "Parse the task description and return the task_status of the task.",
    "select_better_answer": "Select the better answer. Ignore the order of the candidate answers.",
    "report_correctness": "Report the process and final-response correctness of the solution.",
}


# ToolEval's own function specs (tooleval_gpt-3.5-turbo_default/config.yaml), for `style="toolbench"`:
# their descriptions and enum orders; `reason` is appended after the decision field, as
# OpenAINormalizedEvaluator.function_call(return_reason=True) does.
_TB_STATUS = {"type": "string", "enum": ["Unsure", "Unsolved", "Solved"]}
_TB_ANSWER = "Parse the json answer with layerd nodes and return the answer_status about the answer"
TOOLBENCH_FUNCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "check_answer_status": (_TB_ANSWER, {"answer_status": _TB_STATUS}),
    "parse_answer_status": (_TB_ANSWER, {"answer_status": _TB_STATUS}),
    "check_task_solvable": ("Parse the task description and return the task_status about the task",
                            {"task_status": {"type": "string", "enum": ["Unsure", "Unsolvable", "Solvable"]}}),
    "select_better_answer": ("Select the better answer with a comprehensive investigation on given aspects. You "
                             "should ignore the impact of the order of candidate answers.",
                             {"index": {"type": "number", "description": "The `index` value in the selected "
                                                                         "better answer."}}),
}
TOOLBENCH_SAMPLING = {"temperature": 0.2, "max_tokens": 1000}  # the same config.yaml


def toolbench_function(function: str) -> dict[str, Any]:
    description, fields = TOOLBENCH_FUNCTIONS[function]
    return {"name": function, "description": description,
            "parameters": {"type": "object",
                           "properties": {**fields, "reason": {"type": "string", "description": "explain your answer."}},
                           "required": [*fields, "reason"]}}


def _prompt_version(style: str = "toolweave") -> str:
    h = hashlib.sha1()
    for prompt, _ in FUNCTIONS.values():
        h.update(template(prompt).encode())
    if style == "toolbench":
        for function in TOOLBENCH_FUNCTIONS:
            h.update(template(f"toolbench_judge_{function}").encode())
        return f"tooleval-toolbench+{h.hexdigest()[:8]}"
    return f"tooleval-v1+{h.hexdigest()[:8]}"


PROMPT_VERSION = _prompt_version()


def parameters(function: str) -> dict[str, Any]:
    """JSON schema of a function's arguments; `reason` comes first so the judge reasons before it decides."""
    _, fields = FUNCTIONS[function]
    lead = "analysis" if function == "report_correctness" else "reason"
    return {"type": "object", "properties": {lead: {"type": "string"}, **fields},
            "required": [lead, *fields], "additionalProperties": False}  # all required: OpenAI strict mode


def tool_spec(function: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": function, "description": _DESCRIPTIONS[function],
                                             "parameters": parameters(function)}}


class JudgeFailure(RuntimeError):
    """The judge gave no usable verdict after its retries (`on_failure="stop"`)."""

    def __init__(self, function: str, query: str, attempts: int, problems: list[str]):
        self.function, self.query, self.attempts, self.problems = function, query, attempts, problems
        super().__init__(f"judge failed on query {query!r}: no usable {function} after {attempts} attempt(s): "
                         + "; ".join(problems)[:1500])


async def gather_or_stop(*aws: Any) -> list[Any]:
    """asyncio.gather that, on the first exception (a JudgeFailure under "stop"), cancels the rest
    before they ask the judge again, and raises that exception itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(aw) for aw in aws]
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [t.result() for t in tasks]


def retry_waits(retries: int, wait_s: float, wait_max_s: float) -> list[float]:
    """Seconds slept before each retry: tenacity's wait_exponential(multiplier=1, min=wait_s,
    max=wait_max_s) as StableToolBench's function_call waits (4, 4 for 3 tries); 0 = no wait."""
    if wait_s <= 0:
        return [0.0] * retries
    return [float(min(max(2 ** n, wait_s), wait_max_s)) for n in range(retries)]


@dataclass
class Verdict:
    ok: bool
    values: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)


class Judge:
    """Asks a ChatModel ToolEval's questions. `output`: forced tool call or JSON-schema output."""

    def __init__(self, model: ChatModel, *, name: str = "", output: Literal["tool_call", "json_schema"] = "tool_call",
                 retries: int = 2, temperature: float | None = 0.0, max_tokens: int = 512,
                 style: Literal["toolweave", "toolbench"] = "toolweave", tie: str = "coin",
                 win_status: str = "pass_rate", win_votes: int | None = None,
                 on_failure: Literal["stop", "unsure"] = "unsure", retry_wait_s: float = 0.0,
                 retry_wait_max_s: float = 10.0, tag: CallTag | None = None):
        """`style="toolbench"`: ToolEval's verbatim prompts and function specs (reason after the
        decision); the caller passes ToolEval's inputs (see pass_rate / win_rate) and sampling.
        `tie`, `win_status`, `win_votes`: the aggregation the evaluation functions use when their
        callers do not say (cfg.evaluate travels with the judge: see `judge_options`).
        `on_failure`: after `retries` retries (waits: `retry_waits`), raise JudgeFailure ("stop")
        or return a verdict that is not ok ("unsure"). `tag`: the caller's (its stage's call tag,
        e.g. evaluate's or verify's), each call adding its episode: usage is accounted to the caller."""
        if on_failure not in ("stop", "unsure"):
            raise ValueError(f"on_failure must be 'stop' or 'unsure', got {on_failure!r}")
        self.model, self.output, self.retries, self.style = model, output, retries, style
        self.on_failure = on_failure
        self.failure: JudgeFailure | None = None  # under "stop": the first, after which nothing is asked
        self.waits = retry_waits(retries, retry_wait_s, retry_wait_max_s)
        self.tie, self.win_status, self.win_votes = tie, win_status, win_votes
        self.name = name or getattr(model, "model", "") or type(model).__name__
        self.temperature, self.max_tokens = temperature, max_tokens
        self.prompt_version = _prompt_version(style)
        self.tag = tag or CallTag(role="judge")

    async def ask(self, function: str, fields: dict[str, Any], *, episode: str = "", query: str = "") -> Verdict:
        """One verdict; `query` (its id) names it in a JudgeFailure."""
        if self.failure is not None:  # stopped: conversations already running ask nothing more
            raise self.failure
        prompt, _ = FUNCTIONS[function]
        if self.style == "toolbench" and function in TOOLBENCH_FUNCTIONS:
            # the template's description keeps its surrounding newlines there
            messages = [{"role": "user", "content": "\n" + render(f"toolbench_judge_{function}", **fields) + "\n"}]
            spec = {"type": "function", "function": toolbench_function(function)}
            schema = spec["function"]["parameters"]
        else:
            messages = [{"role": "user", "content": render(prompt, **fields)}]
            spec, schema = tool_spec(function), parameters(function)
        usage, problems, tag = Usage(), [], replace(self.tag, episode=episode)
        for attempt in range(1, self.retries + 2):
            if attempt > 1 and self.waits[attempt - 2] > 0:
                await asyncio.sleep(self.waits[attempt - 2])
            if self.failure is not None:
                raise self.failure
            try:
                if self.output == "json_schema":
                    reply = await self.model.chat(
                        messages, json_schema=schema,
                        temperature=self.temperature, max_tokens=self.max_tokens,
                        tag=tag)
                else:
                    reply = await self.model.chat(
                        messages, tools=[spec],
                        tool_choice={"type": "function", "function": {"name": function}},
                        temperature=self.temperature, max_tokens=self.max_tokens,
                        tag=tag)
            except (LLMError, OSError, TimeoutError) as e:  # endpoint down after its own retries
                problems.append(f"attempt {attempt}: {type(e).__name__}: {e}")
                continue
            usage.add(reply.usage)
            values, problem = parse_reply(function, reply.message, output=self.output, style=self.style)
            if values is not None:
                reason = str(values.get("reason") or values.get("analysis") or "")
                return Verdict(True, values, reason, attempt, usage)
            problems.append(f"attempt {attempt}: {problem}")
        if self.on_failure == "stop":
            self.failure = JudgeFailure(function, query or episode, self.retries + 1, problems)
            raise self.failure
        return Verdict(False, {}, f"judge gave no usable {function}: " + "; ".join(problems)[:1000],
                       self.retries + 1, usage)


def judge_options(ev: Any) -> dict[str, Any]:
    """Judge(...) keyword arguments from `cfg.evaluate`: style, sampling and aggregation."""
    return {"style": ev.judge_style, "temperature": ev.judge_temperature, "max_tokens": ev.judge_max_tokens,
            "tie": ev.tie, "win_status": ev.win_status, "win_votes": ev.win_votes,
            "on_failure": ev.judge_failure, "retry_wait_s": ev.judge_retry_wait_s,
            "retry_wait_max_s": ev.judge_retry_wait_max_s}


def _arguments(message: dict[str, Any], function: str, output: str) -> Any:
    """The reply's arguments: its first tool call's (as StableToolBench reads `tool_calls[0]`), or in
    JSON-schema mode the whole content as JSON. Anything else is prose: a failure."""
    calls = message.get("tool_calls") or []
    if calls:
        fn = calls[0].get("function") or {}
        if fn.get("name") not in (function, None, ""):
            raise ValueError(f"called {fn.get('name')!r}, not {function}")
        args = fn.get("arguments")
        return json.loads(args) if isinstance(args, str) else args
    content = (message.get("content") or "").strip()
    if not content:
        raise ValueError("neither a tool call nor content")
    if output != "json_schema":
        raise ValueError(f"no tool call, prose instead: {content[:120]!r}")
    return json.loads(content)


def parse_reply(function: str, message: dict[str, Any], *, output: str = "tool_call",
                style: str = "toolweave") -> tuple[dict[str, Any] | None, str]:
    """(values, "") when the reply holds valid arguments for `function` -- every required field,
    the reason too, as ToolEval reads `ret['reason']` -- else (None, why not)."""
    try:
        values = _arguments(message, function, output)
        if isinstance(values, dict) and "index" in values and isinstance(values["index"], str | float):
            values["index"] = int(float(values["index"]))  # ToolBench's schema said "number"
        if style == "toolbench" and function in TOOLBENCH_FUNCTIONS:
            required = toolbench_function(function)["parameters"]["required"]
        else:
            required = parameters(function)["required"]
        jsonschema.validate(values, dict(parameters(function), additionalProperties=True, required=required))
        return values, ""
    except (ValueError, TypeError, json.JSONDecodeError, jsonschema.ValidationError) as e:
        msg = e.message if isinstance(e, jsonschema.ValidationError) else str(e)
        return None, f"{type(e).__name__}: {msg[:200]}"
