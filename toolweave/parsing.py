"""Parsers for what models write: ReAct text, tool-call arguments, the tool executor's reply.

Small models write anything: no Thought, text after the action name, Python dicts, fenced code,
a hallucinated Observation and a second action, or nothing. Every parser here returns a result
with an `error` instead of raising, so a malformed turn becomes a recorded step, never a crash.
"""
from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

from json_repair import repair_json

MAX_TEXT = 32_000  # longer model output is cut before parsing (endless generations)
# json_repair's work grows faster than linearly with nesting ('{"' x 4000 took 17 s): it only sees
# input of at most MAX_REPAIR characters and MAX_REPAIR_NESTING '{' / '[' (each parse then stays in
# the tens of ms; tool arguments are far smaller); beyond that only the strict parsers run
MAX_REPAIR = 2_000
MAX_REPAIR_NESTING = 16

_MARKER = re.compile(
    r"(?i)(?:\bASSISTANT\s+)?\b(thought|action[ \t]*input|action|final[ \t]*answer|final[ \t]*response"
    r"|observation)[ \t]*:")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```", re.S)
_NAME = re.compile(r"[A-Za-z_\u4e00-\u9fa5][\w.\-\u4e00-\u9fa5]*")
_STATUS_LINE = re.compile(r"(?i)status[ _]*code\s*[:=]?\s*(\d{3})")


@dataclass
class ReActStep:
    """One parsed assistant turn. `action_input` is the raw text; `arguments` its parse."""

    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    arguments: dict[str, Any] | None = None
    final_answer: str | None = None
    error: str | None = None

    @property
    def is_final(self) -> bool:
        return self.final_answer is not None and self.action is None


def _strip_fence(s: str) -> str:
    s = s.strip()
    m = _FENCE.match(s)
    return m.group(1).strip() if m else s.strip("`").strip()


def _first_object(s: str) -> Any:
    """The first complete JSON value starting at the first '{' (text after it is ignored)."""
    i = s.find("{")
    if i < 0:
        raise ValueError("no '{'")
    obj, _ = json.JSONDecoder(strict=False).raw_decode(s[i:])
    return obj


def _literal(s: str) -> Any:
    i, j = s.find("{"), s.rfind("}")
    if i < 0 or j <= i:
        raise ValueError("no dict literal")
    with warnings.catch_warnings():  # "invalid escape sequence" in model text is not our warning
        warnings.simplefilter("ignore")
        return ast.literal_eval(s[i:j + 1])


def _as_json(obj: dict) -> tuple[dict[str, Any] | None, str | None]:
    """`obj` as plain JSON data (tuples -> lists), or why it is none: `{'ids': {1, 2}}` parses as
    a Python literal but a set or bytes cannot be sent, cached or written."""
    try:
        return json.loads(json.dumps(obj)), None
    except (TypeError, ValueError, RecursionError) as e:
        return None, f"arguments are not JSON-representable ({type(e).__name__}: {str(e)[:80]})"


def parse_arguments(raw: str | dict | None) -> tuple[dict[str, Any] | None, str | None]:
    """Tool-call arguments -> (dict, None) or (None, reason). None / "" mean no arguments: {}."""
    if raw is None:
        return {}, None
    if isinstance(raw, dict):
        return _as_json(raw)
    if not isinstance(raw, str):
        return None, f"arguments must be a JSON object, got {type(raw).__name__}"
    s = _strip_fence(raw[:MAX_TEXT])
    if not s:
        return {}, None
    for attempt in (lambda t: json.loads(t, strict=False), _first_object, _literal):
        try:
            obj = attempt(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(obj, str) and obj.strip().startswith("{"):
            return parse_arguments(obj)  # double-encoded JSON
        if isinstance(obj, dict):
            return _as_json(obj)
        return None, f"arguments must be a JSON object, got {type(obj).__name__}"
    if "{" in s and len(s) <= MAX_REPAIR and s.count("{") + s.count("[") <= MAX_REPAIR_NESTING:
        try:
            obj = repair_json(s, return_objects=True)
        except Exception:  # the repairer is best effort; its failure is just "not JSON"
            obj = None
        if isinstance(obj, dict) and obj:
            return _as_json(obj)
    return None, f"arguments are not a JSON object: {s[:80]!r}"


def _segments(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first marker, [(marker, text up to the next marker)])."""
    marks = list(_MARKER.finditer(text))
    if not marks:
        return text, []
    head = text[:marks[0].start()]
    segs = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        key = re.sub(r"\s+", " ", m.group(1).lower())
        segs.append((key, text[m.end():end]))
    return head, segs


def _action_name(seg: str) -> tuple[str | None, str | None]:
    """(name, inline input) from 'Action: name', 'Action: `name`', 'Action: name({...})', ..."""
    lines = _strip_fence(seg).strip().splitlines()
    line = lines[0].strip() if lines else ""
    line = line.strip("`'\"*[]").strip()
    m = _NAME.search(line)
    if not m:
        return None, None
    name = m.group(0).rstrip(".-")
    rest = line[m.end():].strip()
    inline = rest[1:rest.rfind(")")] if rest.startswith("(") and ")" in rest else None
    return name or None, inline


def parse_react(text: str | None) -> ReActStep:
    """Parse Thought / Action / Action Input / Final Answer text; the first action wins."""
    if not isinstance(text, str):
        return ReActStep(error=f"no text to parse ({type(text).__name__})")
    step = ReActStep()
    truncated = len(text) > MAX_TEXT
    head, segs = _segments(text[:MAX_TEXT])
    thoughts = [head.strip()] if head.strip() else []
    action_seen = False
    for key, body in segs:
        if key == "observation":
            break  # anything after is the model imagining the tool's answer
        if key == "thought":
            if not action_seen:
                thoughts.append(body.strip())
        elif key == "action":
            if action_seen:
                break  # several actions: take the first
            if step.final_answer is not None:
                break  # a final answer already came first
            action_seen = True
            step.action, inline = _action_name(body)
            if inline is not None and step.action_input is None:
                step.action_input = inline
            rest = body.strip().split("\n", 1)
            if step.action is None:
                step.error = f"Action without a function name: {body.strip()[:80]!r}"
            elif len(rest) > 1 and rest[1].strip() and "{" in rest[1] and step.action_input is None:
                step.action_input = rest[1].strip()  # input on the next line without its marker
        elif key == "action input":
            if not action_seen or step.action_input not in (None, ""):
                if action_seen:
                    break
                continue
            step.action_input = body.strip()
        elif key in ("final answer", "final response"):
            if action_seen:
                break
            step.final_answer = body.strip()
            break
    step.thought = "\n".join(t for t in thoughts if t)
    if step.action is not None:
        raw = step.action_input
        if raw is not None and "{" not in raw and "=" in raw:
            raw = _kwargs_to_json(raw)
        args, err = parse_arguments(raw)
        step.arguments = args
        if err:
            step.error = f"Action Input of {step.action}: {err}"
    elif step.final_answer is None and step.error is None:
        step.error = "no Action and no Final Answer in the reply" if text.strip() else "empty reply"
    if truncated and step.error is None and step.action is None and step.final_answer is None:
        step.error = "reply too long"
    return step


def _kwargs_to_json(raw: str) -> str:
    """`city='Paris', days=3` (a call written Python style) -> a JSON object text, else raw."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call = ast.parse(f"f({raw})", mode="eval").body
        if isinstance(call, ast.Call) and not call.args:
            return json.dumps({k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg})
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        pass
    return raw


# --- the simulated executor's reply ------------------------------------------------------------

def parse_executor_reply(text: str | dict | None) -> tuple[int, str, str | None]:
    """The executor LLM's reply -> (status code, body as text, error).

    Forced JSON `{"status_code": 200, "body": {...}}` is the normal case; ToolAlpaca-style
    "Status Code: 200. Response: {...}" text is accepted; anything else is a 500 with an error.
    """
    if isinstance(text, dict):
        obj: Any = text
    elif not isinstance(text, str) or not text.strip():
        return 500, "", "empty executor reply"
    else:
        obj, err = parse_arguments(text)
        if obj is None or not ({"status_code", "body", "response"} & set(obj)):
            m = _STATUS_LINE.search(text[:MAX_TEXT])
            if m:
                rest = text[m.end():MAX_TEXT]
                body_at = re.search(r"(?i)(response|body)\s*:", rest)
                body = (rest[body_at.end():] if body_at else rest).strip().lstrip(".").strip()
                return int(m.group(1)), _strip_fence(body), None
            return 500, text[:2000], f"executor reply is not status + JSON: {err or 'no status_code'}"
    code = obj.get("status_code", obj.get("status", 200))
    try:
        code = int(code)
    except (TypeError, ValueError, OverflowError):  # Infinity parses as a float
        return 500, "", f"executor status_code is not a number: {str(code)[:40]!r}"
    if not 100 <= code <= 599:
        return 500, "", f"executor status_code out of range: {code}"
    body = obj.get("body", obj.get("response", ""))
    if not isinstance(body, str):
        try:
            body = json.dumps(body, ensure_ascii=False)
        except (TypeError, ValueError):
            body = str(body)
    return code, body, None
