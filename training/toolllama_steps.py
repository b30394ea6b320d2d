"""ToolLLaMA SFT data exactly as ToolBench's preprocess writes it (`sft.format: toolllama_steps`).

OpenBMB/ToolBench `preprocess/preprocess_toolllama_data.py` turns each answer's `train_messages` into
one example per assistant step, `{"id": "Step N: <query>", "conversations": [{"from", "value"}]}`:
system (through `process_system_message`: the output-format sentence added after "with a function
call to actually excute your step." -- an answer without that sentence fails its assert -- and the
functions appended with Python `str()`), user turns (the latest diversity prompt included), function
results, and assistant turns as "\\nThought: <text>" for a turn without a call or "\\nThought: \\nAction:
<name>\\nAction Input: <arguments>" for one with a call: the thought of a call is dropped, a thought-only
turn's text is carried into the next call of the same run of assistant turns. A step whose last
message has no call is not an example. ToolBench's trainer (`train/train.py`, template
`tool-llama-single-round`) joins the turns as "Role: value" lines ("Role:" alone when the value is
empty), ends the last one with the end-of-sequence token and trains only that last assistant reply.
Proven equal to the reference's own output in tests/training/test_toolllama_steps.py.
"""
from __future__ import annotations

from typing import Any

from toolweave.converters.toolbench import episode_to_train_messages
from toolweave.schemas import Episode
from training.formats import RenderError, Segment

SENTENCE = "with a function call to actually excute your step."  # ToolBench's words, typo included
FORMAT_HINT = " Your output should follow this format:\nThought:\nAction\nAction Input:\n"
ROLES = {"system": "System", "user": "User", "function": "Function", "assistant": "Assistant"}


def system_message(content: str, functions: list[dict[str, Any]]) -> str:
    if SENTENCE not in content:
        raise RenderError(f"the system prompt lacks ToolBench's sentence {SENTENCE!r} (its preprocess asserts "
                          "it; solve with `solve.prompts: toolbench`)")
    return content.replace(SENTENCE, SENTENCE + FORMAT_HINT) + \
        "\nSpecifically, you have access to the following APIs: " + str(functions)


def _action(message: dict[str, Any], carried: str) -> str:
    call = message["function_call"]
    return (carried or "\nThought: ") + f"\nAction: {call['name']}\nAction Input: {call['arguments']}"


def step_conversation(messages: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """One train_messages example -> its conversation, or None when its last step has no call."""
    conversation: list[dict[str, str]] = []
    carried = ""
    for i, m in enumerate(messages):
        role = m["role"]
        if role != "assistant":
            value = system_message(m.get("content") or "", functions) if role == "system" else m.get("content")
            conversation.append({"from": role, "value": value})
            carried = ""
            continue
        last = i + 1 == len(messages)
        if "function_call" not in m:
            if last:
                return None
            carried += f"\nThought: {m.get('content') if m.get('content') is not None else ''}"
            continue
        conversation.append({"from": "assistant", "value": _action(m, carried)})
        carried = ""
        if last:
            return conversation
    return None


def toolllama_examples(ep: Episode) -> list[dict[str, Any]]:
    """The episode's examples as the preprocess writes them (`id`, `conversations`)."""
    functions = [t.get("function", t) for t in ep.tools]
    out = []
    for messages in episode_to_train_messages(ep):
        conversation = step_conversation(messages, functions)
        if conversation is not None:
            out.append({"id": f"Step {len(messages) - 1}: {ep.query}", "conversations": conversation})
    return out


def render_conversation(conversation: list[dict[str, str]], eos_token: str) -> list[Segment]:
    """`tool-llama-single-round` text; only the last assistant reply and the end token are trained."""
    segments = []
    for i, turn in enumerate(conversation):
        role, value = ROLES[turn["from"]], turn["value"]
        if i + 1 == len(conversation):
            if turn["from"] != "assistant" or not value:
                raise RenderError("the last turn of a step is not an assistant reply")
            segments += [Segment(f"{role}: "), Segment(str(value), True, 0), Segment(eos_token, True, 0)]
        else:
            segments.append(Segment(f"{role}: {value}\n" if value else f"{role}:"))
    return segments


def render_steps(ep: Episode, eos_token: str) -> list[list[Segment]]:
    examples = toolllama_examples(ep)
    if not examples:
        raise RenderError("no step ends with a function call (ToolBench's preprocess makes no example)")
    return [render_conversation(e["conversations"], eos_token) for e in examples]
