"""Episode → text segments, each marked trained or not, in the three SFT formats.

A segment list is the exact training text cut where the loss switches on or off; `tokenize.py` turns it
into token ids and labels through character offsets, so masks are exact token by token.

- `chat_template`: the OpenAI messages (tool calls and tool results) with the tool list, rendered by the
  tokenizer's chat template. The template is rendered on growing prefixes of the conversation; each
  assistant turn's text is what its render adds after the generation prompt.
- `toolllama`: ToolBench's ToolLLaMA prompt (`System: / User: / Function: / Assistant:` lines, the API
  list appended to the system message, assistant turns as `Thought: / Action: / Action Input:`), as
  ToolBench's tool_llama_model builds it at inference, with an end-of-sequence token after each turn.
- `toolalpaca`: ToolAlpaca's ReAct prompt (tool list, `Question:`, then `Thought / Action / Action Input /
  Observation` steps and a `Final Answer`), one continuous text.

Loss modes: `all_assistant` (every assistant turn, with its end-of-turn marker or ReAct `Observation:` cue,
so the model learns to stop), `last_turn` (only the last assistant turn, ToolBench's option),
`segments` (ToolAlpaca's thought / action / response segments only: the end-of-turn marker and the
`Observation:` cue the runtime uses as a stop sequence are not trained).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from toolweave.schemas import Episode


class RenderError(ValueError):
    """An episode that cannot be rendered; the message is the reason."""


@dataclass(frozen=True)
class Segment:
    text: str
    train: bool = False
    turn: int = -1  # index of the assistant turn the segment belongs to (-1: context)


FORMATS = ("chat_template", "toolllama", "toolalpaca", "toolllama_steps",  # steps: training/toolllama_steps.py
           "toolalpaca_v1")  # training/toolalpaca_v1.py: ToolAlpaca's build_dataset.py text
LOSS_MODES = ("all_assistant", "last_turn", "segments")

TOOLLLAMA_SYSTEM = (
    "You are AutoGPT, you can use many tools(functions) to do the following task.\n"
    "At each step, you need to give your thought to analyze the status now and what to do next, with a "
    "function call to actually excute your step. Your output should follow this format:\n"
    "Thought:\nAction\nAction Input:\n"
    "At the end, call the \"Finish\" function with your final answer, or give up and restart."
)

TOOLALPACA_PROMPT = (
    "Your task is to answer the user's question using available tools. The user cannot see or use the tools "
    "themselves, nor can they know the process of your tool usage. Provide all necessary information in the "
    "\"Final Answer\" field. Do not make up any information. If required parameters are missing, ask the user "
    "for them.\n"
    "You have access to the following tools:\n\n{tools}\n\n"
    "Use the following format:\n\n"
    "Question: the input question you must answer\n"
    "Thought: you should always think about what to do\n"
    "Action: the action to take, should be one of [{tool_names}]\n"
    "Action Input: the input to the action, must be in JSON format\n"
    "Observation: the result of the action\n"
    "... (this Thought/Action/Action Input/Observation can be repeated N times)\n"
    "Thought: I now know the final answer\n"
    "Final Answer: the final answer to the original input question\n\n"
    "Begin!\n\n"
)


# --- helpers -----------------------------------------------------------------------------------

def _functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tools → their function dicts (accepts bare function dicts too)."""
    return [t.get("function", t) for t in tools]


def _args_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def _calls(message: dict[str, Any], ep_id: str, i: int) -> list[tuple[str, str]]:
    out = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise RenderError(f"message {i}: a tool call without a function name")
        out.append((fn["name"], _args_text(fn.get("arguments", {}))))
    return out


def _check_messages(ep: Episode) -> list[dict[str, Any]]:
    msgs = ep.messages
    if not msgs:
        raise RenderError("no messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
            raise RenderError(f"message {i}: unknown role {m.get('role') if isinstance(m, dict) else m!r}")
        if m.get("content") is not None and not isinstance(m["content"], str):
            raise RenderError(f"message {i}: content is {type(m['content']).__name__}, not text")
    if not any(m["role"] == "assistant" for m in msgs):
        raise RenderError("no assistant turn to train on")
    if not any(m["role"] == "user" for m in msgs):
        raise RenderError("no user message")
    return msgs


def _thought(content: str | None) -> str:
    text = (content or "").strip()
    return text[len("Thought:"):].strip() if text.startswith("Thought:") else text


def apply_loss_mode(segments: list[Segment], loss_on: str) -> list[Segment]:
    """Keep `train` only on the turns the loss mode asks for."""
    if loss_on not in LOSS_MODES:
        raise ValueError(f"unknown loss mode {loss_on!r}; one of {LOSS_MODES}")
    if loss_on != "last_turn":
        return segments
    last = max(s.turn for s in segments)
    return [Segment(s.text, s.train and s.turn == last, s.turn) for s in segments]


# --- chat template -----------------------------------------------------------------------------

def _template_messages(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: arguments parsed to objects where they are JSON."""
    out = []
    for m in msgs:
        m = {k: v for k, v in m.items() if v is not None}
        m.setdefault("content", "")
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c["function"])
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except json.JSONDecodeError:
                        pass  # the template prints the string as it is
                calls.append({**c, "type": c.get("type", "function"), "function": fn})
            m["tool_calls"] = calls
        out.append(m)
    return out


def render_chat_template(ep: Episode, tokenizer, loss_on: str = "all_assistant") -> list[Segment]:
    msgs = _template_messages(_check_messages(ep))
    tools = ep.tools or None
    eos = tokenizer.eos_token or ""

    def render(prefix: list[dict], gen: bool) -> str:
        try:
            return tokenizer.apply_chat_template(prefix, tools=tools, tokenize=False, add_generation_prompt=gen)
        except Exception as e:  # jinja errors: the template cannot render this conversation
            raise RenderError(f"chat template failed: {type(e).__name__}: {e}") from None

    segments: list[Segment] = []
    done = ""  # text already emitted = render of msgs[:i]
    turn = -1
    for i, m in enumerate(msgs):
        full = render(msgs[: i + 1], gen=False)
        if m["role"] == "assistant":
            head = render(msgs[:i], gen=True) if i else render([], gen=True)
            if not head.startswith(done) or not full.startswith(head):
                raise RenderError(f"chat template is not prefix-stable at message {i}")
            turn += 1
            segments.append(Segment(head[len(done):]))
            body = full[len(head):]
            # the end-of-turn marker is trained (the model must learn to stop); what follows it is not
            if eos and eos in body:
                end = body.rfind(eos)
                core, marker, rest = body[:end], eos, body[end + len(eos):]
            else:
                core = body.rstrip()
                marker, rest = "", body[len(core):]
            segments += [Segment(core, True, turn), Segment(marker, loss_on != "segments", turn), Segment(rest)]
        else:
            if not full.startswith(done):
                raise RenderError(f"chat template is not prefix-stable at message {i}")
            segments.append(Segment(full[len(done):]))
        done = full
    return apply_loss_mode([s for s in segments if s.text], loss_on)


# --- ToolLLaMA ---------------------------------------------------------------------------------

def render_toolllama(ep: Episode, eos_token: str, loss_on: str = "all_assistant") -> list[Segment]:
    msgs = _check_messages(ep)
    functions = _functions(ep.tools)
    system = next((m.get("content") or "" for m in msgs if m["role"] == "system"), TOOLLLAMA_SYSTEM)
    if functions:
        system += "\nSpecifically, you have access to the following APIs: " + json.dumps(functions, ensure_ascii=False)
    segments = [Segment(f"System: {system}\n")]
    turn = -1
    for i, m in enumerate(msgs):
        role = m["role"]
        if role == "system":
            continue
        if role == "user":
            segments.append(Segment(f"User: {m.get('content') or ''}\n"))
        elif role == "tool":
            segments.append(Segment(f"Function: {m.get('content') or ''}\n"))
        else:
            calls = _calls(m, ep.id, i) or [None]
            for k, call in enumerate(calls):  # one ReAct step per call; the thought goes with the first
                turn += 1
                thought = _thought(m.get("content")) if k == 0 else ""
                text = f"\nThought: {thought}"
                if call:
                    text += f"\nAction: {call[0]}\nAction Input: {call[1]}"
                segments += [Segment("Assistant: "), Segment(text, True, turn),
                             Segment(eos_token, loss_on != "segments", turn), Segment("\n")]
    return apply_loss_mode(segments, loss_on)


# --- ToolAlpaca --------------------------------------------------------------------------------

def render_toolalpaca(ep: Episode, eos_token: str, loss_on: str = "all_assistant") -> list[Segment]:
    msgs = _check_messages(ep)
    functions = _functions(ep.tools)
    tool_lines = "\n".join(
        f"{f.get('name')}: {f.get('description', '')} Parameters: {json.dumps(f.get('parameters', {}), ensure_ascii=False)}"
        for f in functions)
    names = ", ".join(str(f.get("name")) for f in functions)
    question = ep.query or next(m.get("content") or "" for m in msgs if m["role"] == "user")
    segments = [Segment(TOOLALPACA_PROMPT.format(tools=tool_lines, tool_names=names) + f"Question: {question}\n")]
    seen_question = False
    turn = -1
    for i, m in enumerate(msgs):
        role = m["role"]
        if role == "system":
            continue
        if role == "user":
            if seen_question:  # a later user message answers the assistant's clarifying question
                segments.append(Segment(f"User: {m.get('content') or ''}\n"))
            seen_question = True
        elif role == "tool":
            segments.append(Segment(f" {m.get('content') or ''}\n"))
        else:
            calls = _calls(m, ep.id, i)
            final = [c for c in calls if c[0] == "Finish"]
            actions = [c for c in calls if c[0] != "Finish"]
            thought = _thought(m.get("content"))
            for k, (name, args) in enumerate(actions):
                turn += 1
                text = f"Thought: {thought if k == 0 else ''}\nAction: {name}\nAction Input: {args}"
                segments += [Segment(text, True, turn), Segment("\nObservation:", loss_on != "segments", turn)]
            if final or not actions:
                turn += 1
                answer = thought
                if final:
                    try:
                        answer = json.loads(final[0][1]).get("final_answer", "") or thought
                    except (json.JSONDecodeError, AttributeError):
                        raise RenderError(f"message {i}: Finish arguments are not a JSON object") from None
                text = f"Thought: I now know the final answer.\nFinal Answer: {answer}"
                segments += [Segment(text, True, turn), Segment(eos_token, loss_on != "segments", turn),
                             Segment("\n")]
    return apply_loss_mode(segments, loss_on)


def render(ep: Episode, tokenizer, fmt: str, loss_on: str) -> list[Segment]:
    if fmt == "chat_template":
        return render_chat_template(ep, tokenizer, loss_on)
    if fmt == "toolllama":
        return render_toolllama(ep, tokenizer.eos_token or "", loss_on)
    if fmt == "toolalpaca":
        return render_toolalpaca(ep, tokenizer.eos_token or "", loss_on)
    if fmt == "toolllama_steps":
        raise ValueError("toolllama_steps makes one example per step: use training.sft_data.render_examples")
    if fmt == "toolalpaca_v1":  # training/toolalpaca_v1.py builds on this module's helpers
        raise ValueError("toolalpaca_v1 is rendered by training.toolalpaca_v1.render_toolalpaca_v1")
    raise ValueError(f"unknown SFT format {fmt!r}; one of {FORMATS}")
