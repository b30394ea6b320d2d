"""One answer to be judged, from our Episode records or from ToolBench's converted-answer files.

ToolEval looks at: the query, the tools offered, whether the last step was `Finish` (else the answer
fails unjudged), the final answer, and the chain of tool calls (name, arguments, response).
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolweave import safe_read
from toolweave.converters import tooleval
from toolweave.converters.toolbench import episode_to_toolbench_answer, toolbench_method_name, toolbench_ready
from toolweave.schemas import Episode, RecordError

FINISH = "Finish"
GIVE_UP = "give_up_and_restart"
# an episode's `extra.tools` as ToolBench names the setting in its results: "oracle" (the query's own
# tools) and "retriever" (the retrieved ones)
TOOL_SETTINGS = {"given": "oracle", "retrieved": "retriever"}
ORACLE = "oracle"


@dataclass
class Answer:
    query_id: str
    query: str
    finished: bool  # the last step was Finish(give_answer) / a final response
    final_answer: str
    steps: list[dict[str, Any]] = field(default_factory=list)  # {name, arguments, response}
    tool_names: list[str] = field(default_factory=list)
    available_tools: list[dict[str, Any]] = field(default_factory=list)
    method: str = ""
    tools: str = ORACLE  # the tool setting it was solved with (TOOL_SETTINGS' names)
    model: str = ""
    split: str = ""
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    episode_id: str = ""
    raw: dict[str, Any] | None = None  # the converted-answer entry it was read from (ToolEval's own input)
    episode: Episode | None = field(default=None, repr=False, compare=False)  # the episode it was made from
    # how ToolEval's script shows it: "pass_rate" (tool messages rewritten by its hallucination check)
    # or "preference" (eval_preference.py's process_answer: final answer cut at 1000, no "method")
    toolbench_view: str = "pass_rate"

    @property
    def candidate(self) -> str:
        """What is scored as one system: the method, with the retrieved tools `<method>_retriever`."""
        return self.method if self.tools == ORACLE else f"{self.method}_{self.tools}"

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    def converted(self) -> dict[str, Any]:
        """The ToolEval converted answer: the entry read, or for our episodes what ToolBench's
        convert_to_answer_format.py makes of the episode's answer file (all node kinds, its
        total_steps, the method as ToolBench names it, Finish as written, invalid data from the
        explored tree; toolweave.converters.tooleval)."""
        if self.raw is not None:
            return self.raw
        if self.episode is None:
            raise ValueError(f"answer {self.query_id!r}: neither a converted entry nor an episode")
        data = episode_to_toolbench_answer(toolbench_ready(self.episode), as_searched=True)
        return tooleval.convert_answer(data, toolbench_method_name(self.episode.method), where=self.episode.id)

    def toolbench_final_answer(self) -> str:
        """ToolEval's `answer["final_answer"]`: Finish's arguments as written (a give-up included)."""
        if self.raw is not None or self.episode is not None:
            final = str(self.converted()["answer"].get("final_answer", ""))
        elif not self.finished:
            final = ""
        elif self.final_answer == GIVE_UP:
            final = json.dumps({"return_type": GIVE_UP}, indent=2)
        else:
            final = json.dumps({"return_type": "give_answer", "final_answer": self.final_answer}, indent=2)
        return final[:1000] if self.toolbench_view == "preference" else final

    def toolbench_answer(self) -> dict[str, Any]:
        """ToolEval's converted answer (`method, total_steps, final_answer, answer_details`) as its
        script shows it to the judge (`toolbench_view`)."""
        if self.raw is not None or self.episode is not None:
            converted = self.converted()
            answer, offered = copy.deepcopy(converted["answer"]), converted.get("available_tools") or []
        else:  # an Answer built by hand: its steps as a chain of tool nodes
            offered = [{"name": name} for name in self.tool_names]
            node: list[dict[str, Any]] = []
            for step in reversed(self.steps):
                node = [{"role": "tool", "message": dict(step), "next": node}]
            answer = {"method": self.method, "total_steps": self.total_steps,
                      "final_answer": self.toolbench_final_answer(), "answer_details": node}
        if self.toolbench_view == "preference":
            answer["final_answer"] = str(answer.get("final_answer", ""))[:1000]
            answer["answer_details"] = answer.get("answer_details", [])[:3000]
            answer.pop("method", None)
            return answer
        tooleval.has_no_hallucination(offered, answer)  # eval_pass_rate.py rewrites before judging
        return answer

    def for_judge(self, limit: int = 6000) -> str:
        """The answer as JSON for the judge (ToolBench passes `json.dumps(answer)`), cut to `limit` chars."""
        details = [{"role": "tool", "message": s} for s in self.steps]
        text = json.dumps({"final_answer": self.final_answer[:1000], "total_steps": self.total_steps,
                           "answer_details": details}, ensure_ascii=False)
        return text if len(text) <= limit else text[:limit] + " ...(truncated)"

    def steps_text(self) -> tuple[str, str]:
        """ToolEval's `get_steps` of the converted answer, hallucination rewrite applied:
        ("Step 1: {...}\nStep 2: ...", "Final step: {...}"). The same in and outside the toolbench
        preset: these texts exist only for ToolEval's result files."""
        answer = dataclasses.replace(self, toolbench_view="pass_rate").toolbench_answer()
        return tooleval.get_steps(answer) if answer.get("answer_details") else ("", "")


# --- from our episodes -------------------------------------------------------------------------

def _tool_names(tools: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in tools:
        fn = t.get("function", t) if isinstance(t, dict) else {}
        if isinstance(fn, dict) and fn.get("name"):
            out.append(str(fn["name"]))
    return out


def steps_from_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assistant tool calls paired with the tool messages that answered them."""
    responses = {m.get("tool_call_id"): m.get("content") or "" for m in messages if m.get("role") == "tool"}
    steps = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = fn.get("arguments", "")
            steps.append({"name": fn.get("name", ""),
                          "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                          "response": str(responses.get(call.get("id"), ""))})
    return steps


def from_episode(ep: Episode, query: str | None = None, split: str | None = None) -> Answer:
    """`finished` = the episode ended on Finish (DFSDT/CoT) or a final response (ReAct)."""
    final = (ep.final_answer or "").strip()
    finished = ep.status == "answered" and bool(final)
    if ep.status == "gave_up":  # ended on Finish(give_up_and_restart): judged Unsolved, solvability still asked
        finished, final = True, GIVE_UP
    return Answer(
        query_id=ep.instruction_id, query=query or ep.query, finished=finished,
        final_answer=final, steps=steps_from_messages(ep.messages), tool_names=_tool_names(ep.tools),
        available_tools=ep.tools, method=ep.method, tools=TOOL_SETTINGS.get(ep.extra.get("tools"), ORACLE),
        model=ep.model, split=split or ep.split,
        llm_calls=ep.llm_calls, prompt_tokens=ep.prompt_tokens, completion_tokens=ep.completion_tokens,
        episode_id=ep.id, episode=ep)


# --- from ToolBench / StableToolBench converted answers ------------------------------------------

def _step_of(message: Any) -> dict[str, Any]:
    """A tool node's message as {name, arguments, response}: a dict as it is, a string as `str(dict)`
    reads back, else (ToolBench's published files cut it at 100 characters) its name only."""
    if isinstance(message, dict):
        return message
    try:
        parsed = ast.literal_eval(message)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    found = re.findall(r"'name':\s*'(.*?)'", str(message), re.DOTALL)
    return {"name": found[0] if found else "", "arguments": "", "response": "", "text": str(message)}


def _chain(details: Any) -> list[dict[str, Any]]:
    """The tool nodes `get_steps` shows: along `answer_details[0].next[0]...`, non-empty messages."""
    steps: list[dict[str, Any]] = []
    node = details[0] if isinstance(details, list) and details else details
    while isinstance(node, dict):
        if node.get("message") and node.get("role") == "tool":
            steps.append(_step_of(node["message"]))
        nxt = node.get("next") or []
        node = nxt[0] if nxt else None
    return steps


def _final_text(raw: str) -> str:
    """Converted answers hold Finish's arguments as JSON text; keep the answer (or the give-up marker)."""
    try:
        args = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return raw or ""
    if isinstance(args, dict):
        if args.get("return_type") == GIVE_UP:
            return GIVE_UP
        return str(args.get("final_answer", "") or "")
    return raw


def from_converted(query_id: str, example: dict[str, Any], model: str = "") -> Answer:
    """One entry of a converted-answer file (ToolBench's `results/<set>/<model>/<test set>.json`,
    StableToolBench's `model_predictions_converted/<model>/<test set>.json`); tool messages may be
    dicts or strings. `finished` is eval_pass_rate.py's test: `get_steps`' final step shows a Finish
    call, after its hallucination rewrite."""
    try:
        ans = example["answer"]
        steps = _chain(ans.get("answer_details") or [])
        tools = example.get("available_tools") or []
        names = [str(t["function"]["name"] if "function" in t else t["name"]) for t in tools]
        answer = Answer(query_id=str(query_id), query=str(example["query"]), finished=False, final_answer="",
                        steps=steps, tool_names=names, available_tools=tools,
                        method=str(ans.get("method", "")), model=model, raw=example)
        answer.finished = tooleval.ends_with_finish(answer.steps_text()[1])
        answer.final_answer = _final_text(ans.get("final_answer", "")) if answer.finished else ""
        return answer
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise RecordError("converted_answer", str(query_id), f"not a ToolEval answer: {e!r}") from None


def load_converted(path: str | Path, model: str | None = None) -> tuple[list[Answer], list[RecordError]]:
    """All answers of a converted-answer JSON file; entries that do not parse come back as errors.
    A file that cannot be read whole (not a regular file, too big, not JSON) raises RecordError."""
    path = Path(path)
    model = model or path.parent.name
    try:
        data = json.loads(safe_read.read_text(path))  # no FIFO, bounded in size and time
    except (OSError, ValueError) as e:
        raise RecordError("converted_answer", str(path), f"cannot read the converted-answer file: {e}") from None
    if not isinstance(data, dict):
        raise RecordError("converted_answer", str(path), f"not a map of query ids, a JSON {type(data).__name__}")
    good, bad = [], []
    for qid, ex in data.items():
        try:
            good.append(from_converted(qid, ex, model))
        except RecordError as e:
            bad.append(e)
    return good, bad
