"""ToolAlpaca's SFT text exactly as its `build_dataset.py` writes it (`sft.format: toolalpaca_v1`).

One example per episode, as segments alternating untrained / trained: the prompt of `test_prompt_v1`
(prefix, the tool list with `getDetails` first, the USER/ASSISTANT format, `USER: <question>` and
`ASSISTANT Thought:`) plus a space; then per tool call the thought with `ASSISTANT Action:` /
`ASSISTANT Action Input:` and the `ASSISTANT Observation: ` cue (trained), the observation and the
next `ASSISTANT Thought: ` cue (not trained); last the final thought and `ASSISTANT Response:` (trained).
No end-of-sequence token: build_dataset.py adds none. Like build_dataset.py, an episode with more than
5 tool calls, with none, or with getDetails calls only is not used (RenderError says which).
"""
from __future__ import annotations

from typing import Any

from toolweave.prompts import render
from toolweave.schemas import Episode
from training.formats import RenderError, Segment, _calls, _check_messages, _functions, _thought

GET_DETAILS = "getDetails"
MAX_STEPS = 5  # build_dataset.py: len(intermediate_steps) > 5 -> dropped
DEFAULT_FINAL_THOUGHT = "I can reponse to the user now."  # build_dataset.py's default, its spelling
HINT = "\nHint: "  # build_dataset.py drops a question's hint


def tool_lines(ep: Episode) -> list[tuple[str, str]]:
    """(name, description) of each tool line: getDetails, then the functions with ToolAlpaca's own
    documentation (`extra["toolalpaca_docs"]`, written by simulate) or their description."""
    docs = {name: doc for name, doc in ep.extra.get("toolalpaca_docs") or []}
    lines = [(GET_DETAILS, render("toolalpaca_get_details_tool"))]
    for f in _functions(ep.tools):
        name = str(f.get("name"))
        if name != GET_DETAILS:
            lines.append((name, docs.get(name, f.get("description") or "")))
    return lines


def prompt(ep: Episode, question: str) -> str:
    lines = tool_lines(ep)
    return "\n\n".join([render("toolalpaca_v1_prefix"),
                        "\n".join(f"{name}: {doc}" for name, doc in lines),
                        render("toolalpaca_v1_format", tool_names=", ".join(n for n, _ in lines)),
                        render("toolalpaca_v1_suffix", input=question, agent_scratchpad="")])


def final_thought(ep: Episode) -> str:
    """The thought before the final answer: ToolAlpaca's `Final Thought` (its ReAct text before
    "Final Answer:"), or build_dataset.py's default when the episode has none."""
    react = ep.extra.get("react") or []
    raw = str(react[-1].get("raw") or "") if react and "observation" not in react[-1] else ""
    for marker in ("Final Answer:", "ASSISTANT Response:"):
        if marker in raw:
            return _thought(raw.rsplit(marker, 1)[0]) or DEFAULT_FINAL_THOUGHT
    return DEFAULT_FINAL_THOUGHT


def render_toolalpaca_v1(ep: Episode) -> list[Segment]:
    msgs = _check_messages(ep)
    question = (ep.query or next(m.get("content") or "" for m in msgs if m["role"] == "user")).rsplit(HINT, 1)[0]
    segments = [Segment(prompt(ep, question) + " ")]
    steps: list[str] = []
    answer: str | None = None
    seen_question = False
    for i, m in enumerate(msgs):
        role = m["role"]
        if role == "user":
            if seen_question:
                raise RenderError(f"message {i}: a user turn outside getDetails (simulate with "
                                  f"simulate.clarify: get_details)")
            seen_question = True
        elif role == "tool":
            segments.append(Segment(f"{m.get('content') or ''}\nASSISTANT Thought: "))
        elif role == "assistant":
            calls = _calls(m, ep.id, i)
            if len(calls) > 1:
                raise RenderError(f"message {i}: {len(calls)} calls in one turn (ToolAlpaca: one per action)")
            if calls:
                name, args = calls[0]
                steps.append(name)
                text = f"{_thought(m.get('content'))}\nASSISTANT Action: {name}\nASSISTANT Action Input: {args}"
                segments.append(Segment(text + "\nASSISTANT Observation: ", True, len(steps) - 1))
            else:
                answer = (m.get("content") or "").strip()
    if not steps:
        raise RenderError("no tool call (build_dataset.py drops it)")
    if len(steps) > MAX_STEPS:
        raise RenderError(f"{len(steps)} steps > {MAX_STEPS} (build_dataset.py drops it)")
    if set(steps) == {GET_DETAILS}:
        raise RenderError("only getDetails calls (build_dataset.py drops it)")
    if answer is None:
        raise RenderError("no final response")
    segments.append(Segment(f"{final_thought(ep)}\nASSISTANT Response: {answer}", True, len(steps)))
    return segments


def as_build_dataset(segments: list[Segment]) -> list[Any]:
    """The segments as build_dataset.py writes one example: [texts, trainable]."""
    return [[s.text for s in segments], [s.train for s in segments]]
