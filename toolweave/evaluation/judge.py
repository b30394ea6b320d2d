"""The LLM judge: one forced function call (or JSON-schema output) per question, so a verdict parses.

Each question is one of ToolEval's functions (`check_answer_status`, `parse_answer_status`,
`check_task_solvable`, `select_better_answer`) or ToolAlpaca's `report_correctness`. Garbage
(no call, bad JSON, a value outside the enum, an endpoint error) is retried; after the last try
the verdict comes back not ok, with the reason, and the caller scores it Unsure.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
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
                 win_status: str = "pass_rate", win_votes: int | None = None):
        """`style="toolbench"`: ToolEval's verbatim prompts and function specs (reason after the
        decision); the caller passes ToolEval's inputs (see pass_rate / win_rate) and sampling.
        `tie`, `win_status`, `win_votes`: the aggregation the evaluation functions use when their
        callers do not say (cfg.evaluate travels with the judge: see `judge_options`)."""
        self.model, self.output, self.retries, self.style = model, output, retries, style
        self.tie, self.win_status, self.win_votes = tie, win_status, win_votes
        self.name = name or getattr(model, "model", "") or type(model).__name__
        self.temperature, self.max_tokens = temperature, max_tokens
        self.prompt_version = _prompt_version(style)

    async def ask(self, function: str, fields: dict[str, Any], *, episode: str = "") -> Verdict:
        prompt, _ = FUNCTIONS[function]
        if self.style == "toolbench" and function in TOOLBENCH_FUNCTIONS:
            # the template's description keeps its surrounding newlines there
            messages = [{"role": "user", "content": "\n" + render(f"toolbench_judge_{function}", **fields) + "\n"}]
            spec = {"type": "function", "function": toolbench_function(function)}
            schema = spec["function"]["parameters"]
        else:
            messages = [{"role": "user", "content": render(prompt, **fields)}]
            spec, schema = tool_spec(function), parameters(function)
        usage, problems = Usage(), []
        for attempt in range(1, self.retries + 2):
            try:
                if self.output == "json_schema":
                    reply = await self.model.chat(
                        messages, json_schema=schema,
                        temperature=self.temperature, max_tokens=self.max_tokens,
                        tag=CallTag(stage="evaluate", episode=episode, role="judge"))
                else:
                    reply = await self.model.chat(
                        messages, tools=[spec],
                        tool_choice={"type": "function", "function": {"name": function}},
                        temperature=self.temperature, max_tokens=self.max_tokens,
                        tag=CallTag(stage="evaluate", episode=episode, role="judge"))
            except (LLMError, OSError, TimeoutError) as e:  # endpoint down after its own retries
                problems.append(f"attempt {attempt}: {type(e).__name__}: {e}")
                continue
            usage.add(reply.usage)
            values, problem = parse_reply(function, reply.message)
            if values is not None:
                reason = str(values.get("reason") or values.get("analysis") or "")
                return Verdict(True, values, reason, attempt, usage)
            problems.append(f"attempt {attempt}: {problem}")
        return Verdict(False, {}, f"judge gave no usable {function}: " + "; ".join(problems)[:1000],
                       self.retries + 1, usage)


def judge_options(ev: Any) -> dict[str, Any]:
    """Judge(...) keyword arguments from `cfg.evaluate`: style, sampling and aggregation."""
    return {"style": ev.judge_style, "temperature": ev.judge_temperature, "max_tokens": ev.judge_max_tokens,
            "tie": ev.tie, "win_status": ev.win_status, "win_votes": ev.win_votes}


def _arguments(message: dict[str, Any], function: str) -> Any:
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        if fn.get("name") in (function, None, ""):
            args = fn.get("arguments")
            return json.loads(args) if isinstance(args, str) else args
    content = (message.get("content") or "").strip()
    if not content:
        raise ValueError("neither a tool call nor content")
    m = re.search(r"\{.*\}", content, re.DOTALL)
    if m:
        try:
            return json.loads(m.group(0))
        except json.JSONDecodeError:
            pass
    return _from_words(content, function)


def _from_words(text: str, function: str) -> dict[str, Any]:
    """Last resort for a judge that wrote prose: accept it only if exactly one allowed value is named."""
    _, fields = FUNCTIONS[function]
    out = {}
    for key, schema in fields.items():
        found = {v for v in schema["enum"] if re.search(rf"(?<![A-Za-z]){re.escape(str(v))}(?![A-Za-z])", text)}
        if len(found) != 1:
            raise ValueError(f"prose names {sorted(map(str, found)) or 'no'} value(s) for {key}")
        out[key] = found.pop()
    return out


def parse_reply(function: str, message: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(values, "") when the reply holds valid arguments for `function`, else (None, why not)."""
    try:
        values = _arguments(message, function)
        if isinstance(values, dict) and "index" in values and isinstance(values["index"], str | float):
            values["index"] = int(float(values["index"]))  # ToolBench's schema said "number"
        # only the decisive fields must be there: a verdict without its reason still counts
        schema = dict(parameters(function), additionalProperties=True, required=list(FUNCTIONS[function][1]))
        jsonschema.validate(values, schema)
        return values, ""
    except (ValueError, TypeError, json.JSONDecodeError, jsonschema.ValidationError) as e:
        msg = e.message if isinstance(e, jsonschema.ValidationError) else str(e)
        return None, f"{type(e).__name__}: {msg[:200]}"
