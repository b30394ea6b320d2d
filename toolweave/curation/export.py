"""Episodes -> the formats other trainers read, and each format back to Episodes.

- ShareGPT (LLaMA-Factory's tool-use layout): `conversations` of `{from, value}` turns (`human`, `gpt`,
  `function_call`, `observation`), `system`, `tools` (the OpenAI tool list as JSON text), plus the
  episode's id, instruction id, method, status and final answer as metadata columns. A thought that
  came with a call rides on the `function_call` turn as `thought`; assistant texts directly followed
  by another assistant turn ride on that turn as `prior_thoughts`, so turns alternate as LLaMA-Factory
  requires and the round trip stays exact.
- OpenAI fine-tuning JSONL: one `{"messages": [...], "tools": [...]}` object a line, nothing else.
- ToolAlpaca instance files: a list of tool entries (the tool's own ToolAlpaca fields where it came
  from ToolAlpaca) whose `Instances` hold `{input, output, Final Thought, intermediate_steps:
  [[[action, action_input, log], observation], ...]}`, the shape ToolAlpaca's build_dataset reads.
  An instance holds one question: an episode with a clarifying exchange is refused with the reason.
- ToolBench answer files: `toolweave.converters.toolbench` (written one file a query here); their
  train_messages end on the Finish call, so Finish's fixed observation is not carried, and the system
  message gets the step clause ToolBench's preprocess requires (`toolbench_ready`).

Tool-call ids are not carried by ShareGPT or ToolAlpaca: importers number them `call_0`, `call_1`...
(`renumber_calls` gives an episode's messages in that form, which is what round trips compare).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from toolweave import safe_read
from toolweave.converters.toolbench import answer_to_episode, episode_to_toolbench_answer, toolbench_ready
from toolweave.schemas import Episode, RecordError, Tool
from toolweave.secrets import redact_obj
from toolweave.toolsets.export import FINISH

SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}
FINAL_THOUGHT = "I now know the final answer."
# an export is read back whole: a bound on it, and on the time a stuck filesystem may take
READ_JSONL_MAX_BYTES = 2 * 1024 ** 3
READ_JSONL_TIMEOUT_S = 300.0


def _args_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def renumber_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with tool-call ids `call_0`, `call_1`... in order and each tool message's `name`
    taken from its call: the form formats without ids give back."""
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    out = []
    for m in messages:
        m = dict(m)
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                new = f"call_{len(ids)}"
                ids[str(c.get("id"))] = new
                fn = c.get("function") or {}
                names[new] = str(fn.get("name", ""))
                calls.append({"id": new, "type": "function",
                              "function": {"name": fn.get("name", ""), "arguments": _args_text(fn.get("arguments", ""))}})
            m["tool_calls"] = calls
        elif m.get("role") == "tool":
            m["tool_call_id"] = ids.get(str(m.get("tool_call_id")), m.get("tool_call_id"))
            m["name"] = names.get(m["tool_call_id"], m.get("name", ""))
        out.append(m)
    return out


def outcome_of(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(status, final answer) read from the messages: the last assistant turn's Finish call
    (give_answer / give_up_and_restart), else its text when it calls nothing."""
    for m in reversed(messages):
        if m.get("role") != "assistant":
            continue
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            if fn.get("name") == FINISH:
                try:
                    args = json.loads(_args_text(fn.get("arguments", "")))
                except json.JSONDecodeError:
                    return "no_answer", ""
                args = args if isinstance(args, dict) else {}
                if args.get("return_type") == "give_up_and_restart":
                    return "gave_up", ""
                answer = str(args.get("final_answer") or "")
                return ("answered" if answer else "no_answer"), answer
        text = "" if m.get("tool_calls") else str(m.get("content") or "")
        return ("answered" if text else "no_answer"), text
    return "no_answer", ""


def _line_id(prefix: str, obj: Any) -> str:
    return f"{prefix}-" + hashlib.sha1(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _first_user(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in messages if m.get("role") == "user"), "")


# --- ShareGPT --------------------------------------------------------------------------------

def to_sharegpt(ep: Episode) -> dict[str, Any]:
    system = "\n".join(str(m.get("content") or "") for m in ep.messages if m.get("role") == "system")
    turns: list[dict[str, Any]] = []
    pending: list[str] = []  # assistant texts directly followed by another assistant turn
    messages = [m for m in ep.messages if m.get("role") != "system"]
    for k, m in enumerate(messages):
        role = m.get("role")
        if role == "assistant" and not m.get("tool_calls") and k + 1 < len(messages) \
                and messages[k + 1].get("role") == "assistant":
            pending.append(str(m.get("content") or ""))
            continue
        if role == "tool":
            turns.append({"from": "observation", "value": str(m.get("content") or "")})
        elif role == "assistant" and m.get("tool_calls"):
            calls = [{"name": (c.get("function") or {}).get("name", ""),
                      "arguments": (c.get("function") or {}).get("arguments", "")} for c in m["tool_calls"]]
            turn = {"from": "function_call", "value": json.dumps(calls[0] if len(calls) == 1 else calls,
                                                                 ensure_ascii=False)}
            if m.get("content"):
                turn["thought"] = m["content"]
            turns.append(turn)
        elif role in SHAREGPT_ROLES:
            turns.append({"from": SHAREGPT_ROLES[role], "value": str(m.get("content") or "")})
        else:
            raise RecordError("episode", ep.id, f"message role {role!r} has no ShareGPT turn")
        if pending:  # kept on the next assistant turn, so turns alternate and nothing is lost
            turns[-1]["prior_thoughts"], pending = pending, []
    return {"id": ep.id, "instruction_id": ep.instruction_id, "method": ep.method, "status": ep.status,
            "final_answer": ep.final_answer, "query": ep.query, "system": system, "conversations": turns,
            "tools": json.dumps(ep.tools, ensure_ascii=False)}


def sharegpt_alternation_problem(rec: dict[str, Any]) -> str | None:
    """LLaMA-Factory's ShareGPT reader drops a record whose turns do not alternate human/observation
    with gpt/function_call (two assistant turns in a row: a thought without a call, several calls
    answered by several observations). Says where, so export can count such records."""
    for i, turn in enumerate(rec.get("conversations") or []):
        expected = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if turn.get("from") not in expected:
            return f"turn {i} is {turn.get('from')!r}, LLaMA-Factory expects one of {expected}"
    return None


def from_sharegpt(rec: dict[str, Any]) -> Episode:
    rid = str(rec.get("id") or _line_id("sharegpt", rec))
    try:
        messages: list[dict[str, Any]] = [{"role": "system", "content": rec["system"]}] if rec.get("system") else []
        n = 0
        back = {v: k for k, v in SHAREGPT_ROLES.items()}
        for i, turn in enumerate(rec["conversations"]):
            kind, value = turn["from"], turn["value"]
            messages += [{"role": "assistant", "content": t} for t in turn.get("prior_thoughts") or []]
            if kind == "function_call":
                calls = json.loads(value)
                calls = calls if isinstance(calls, list) else [calls]
                tool_calls = []
                for c in calls:
                    tool_calls.append({"id": f"call_{n}", "type": "function",
                                       "function": {"name": c["name"], "arguments": _args_text(c["arguments"])}})
                    n += 1
                messages.append({"role": "assistant", "content": turn.get("thought"), "tool_calls": tool_calls})
            elif kind == "observation":
                messages.append({"role": "tool", "tool_call_id": f"call_{n - 1}", "content": value})
            elif kind in back:
                messages.append({"role": back[kind], "content": value})
            else:
                raise ValueError(f"turn {i}: unknown 'from' {kind!r}")
        tools = json.loads(rec["tools"]) if isinstance(rec.get("tools"), str) else rec.get("tools") or []
    except (KeyError, TypeError, ValueError) as e:
        raise RecordError("sharegpt", rid, f"not a ShareGPT tool-use record: {type(e).__name__}: {e}") from None
    messages = renumber_calls(messages)
    status, final = outcome_of(messages)
    return Episode(id=rid, instruction_id=str(rec.get("instruction_id") or rid), method=str(rec.get("method") or
                   "imported"), query=str(rec.get("query") or _first_user(messages)),
                   status=rec.get("status") or status, final_answer=rec.get("final_answer", final),
                   messages=messages, tools=tools)


# --- OpenAI fine-tuning JSONL ----------------------------------------------------------------

def to_openai_finetune(ep: Episode) -> dict[str, Any]:
    """`{"messages", "tools"}` as OpenAI's chat fine-tuning takes them (tool messages without `name`)."""
    messages = []
    for m in ep.messages:
        m = {k: v for k, v in m.items() if not (m.get("role") == "tool" and k == "name")}
        if m.get("tool_calls"):
            m["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                "function": {"name": c["function"]["name"],
                                             "arguments": _args_text(c["function"].get("arguments", ""))}}
                               for c in m["tool_calls"]]
        messages.append(m)
    return {"messages": messages, "tools": ep.tools}


def from_openai_finetune(rec: dict[str, Any]) -> Episode:
    rid = _line_id("openai", rec)
    if not isinstance(rec.get("messages"), list) or not all(isinstance(m, dict) and "role" in m
                                                            for m in rec["messages"]):
        raise RecordError("openai_finetune", rid, "no 'messages' list of chat messages")
    names = {c.get("id"): (c.get("function") or {}).get("name", "") for m in rec["messages"]
             for c in m.get("tool_calls") or []}
    messages = [dict(m, name=names.get(m.get("tool_call_id"), "")) if m["role"] == "tool" else dict(m)
                for m in rec["messages"]]
    status, final = outcome_of(messages)
    return Episode(id=rid, instruction_id=rid, method="imported", query=_first_user(messages),
                   status=status, final_answer=final, messages=messages, tools=rec.get("tools") or [])


# --- ToolAlpaca instance files -----------------------------------------------------------------

def to_toolalpaca_instance(ep: Episode) -> dict[str, Any]:
    """RecordError for an episode the format cannot hold (a clarifying exchange: several user turns)."""
    msgs = ep.messages
    users = sum(m.get("role") == "user" for m in msgs)
    if users != 1:
        raise RecordError("episode", ep.id, f"a ToolAlpaca instance holds one user question ({users} user turns)")
    steps = []
    for i, m in enumerate(msgs):
        if m.get("role") != "assistant":
            continue
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            if fn.get("name") == FINISH:
                continue
            args = _args_text(fn.get("arguments", ""))
            obs = next((str(x.get("content") or "") for x in msgs[i + 1:]
                        if x.get("role") == "tool" and x.get("tool_call_id") == c.get("id")), "")
            log = f" {m.get('content') or ''}\nAction: {fn.get('name', '')}\nAction Input: {args}"
            steps.append([[fn.get("name", ""), args, log], obs])
    return {"input": ep.query or _first_user(msgs), "output": ep.final_answer,
            "Final Thought": str(ep.extra.get("final_thought") or FINAL_THOUGHT), "intermediate_steps": steps}


def toolalpaca_entry(tool: Tool, episodes: Iterable[Episode]) -> dict[str, Any]:
    """One tool of an instance file: ToolAlpaca's own fields where the tool has them, and `Instances`."""
    own = {k: v for k, v in tool.extra.items() if k[:1].isupper()}
    entry = {"Name": tool.name, "Description": tool.description, "Category": tool.category, **own}
    if tool.openapi is not None and "Documentation" not in entry:
        entry["Documentation"] = json.dumps(tool.openapi, ensure_ascii=False)
    if tool.nl_documentation:
        entry["NLDocumentation"] = tool.nl_documentation
    instances = [to_toolalpaca_instance(ep) for ep in episodes]  # RecordError: the caller records it
    entry["Instructions"] = [i["input"] for i in instances]
    entry["Instances"] = instances
    return entry


def _thought(log: str) -> str | None:
    text = log[1:] if log.startswith(" ") else log
    text = text.rsplit("\nAction:", 1)[0] if "\nAction:" in text else text
    return text or None


def from_toolalpaca_instances(entry: dict[str, Any]) -> list[Episode]:
    """The episodes of one instance-file tool entry (ids from the tool name and instance index)."""
    name = str(entry.get("Name") or "tool")
    episodes = []
    for k, inst in enumerate(entry.get("Instances") or []):
        rid = f"toolalpaca-{name}-{k}"
        try:
            messages: list[dict[str, Any]] = [{"role": "user", "content": inst["input"]}]
            for n, ((action, action_input, log), observation) in enumerate(inst.get("intermediate_steps") or []):
                messages.append({"role": "assistant", "content": _thought(str(log)), "tool_calls": [
                    {"id": f"call_{n}", "type": "function", "function": {"name": action, "arguments": action_input}}]})
                messages.append({"role": "tool", "tool_call_id": f"call_{n}", "name": action,
                                 "content": observation})
            output = str(inst.get("output") or "")
            if output:
                messages.append({"role": "assistant", "content": output})
        except (KeyError, TypeError, ValueError) as e:
            raise RecordError("toolalpaca_instance", rid, f"not a ToolAlpaca instance: {type(e).__name__}: {e}") \
                from None
        extra = {"final_thought": inst["Final Thought"]} if inst.get("Final Thought") not in (None, FINAL_THOUGHT) \
            else {}
        episodes.append(Episode(id=rid, instruction_id=rid, method="imported", query=inst["input"],
                                status="answered" if output else "no_answer", final_answer=output,
                                messages=messages, extra=extra))
    return episodes


# --- files -----------------------------------------------------------------------------------

def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(redact_obj(row), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    try:
        # a regular file only (a FIFO would block), bounded in size and time
        text = safe_read.read_text(path, max_bytes=READ_JSONL_MAX_BYTES, timeout_s=READ_JSONL_TIMEOUT_S)
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError("jsonl", str(path), f"cannot read: {e}") from None
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RecordError("jsonl", f"{path}:{i}", f"invalid JSON: {e.msg}") from None
    return rows


def toolbench_answer_name(ep: Episode) -> str:
    kind = "CoT@1" if ep.method == "cot" else "DFS_woFilter_w2"
    return f"{ep.instruction_id}_{(ep.model or 'toolweave').replace('/', '_')}_{kind}.json"


def write_toolbench_answers(episodes: Iterable[Episode], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ep in episodes:
        p = out / toolbench_answer_name(ep)
        answer = redact_obj(episode_to_toolbench_answer(toolbench_ready(ep)))
        p.write_text(json.dumps(answer, ensure_ascii=False, indent=2), encoding="utf-8")
        paths.append(p)
    return paths


def export_all(episodes: list[Episode], out_dir: str | Path, *, tools: list[Tool] | None = None,
               tool_of: dict[str, str] | None = None) -> dict[str, Any]:
    """Write every format under `out_dir` (sharegpt.jsonl, openai_finetune.jsonl, toolbench/,
    toolalpaca.json); `tool_of` maps an episode id to the tool id its ToolAlpaca instance files under
    (episodes without one are left out of that file). Returns counts for the stage summary."""
    out = Path(out_dir)
    sharegpt = [to_sharegpt(ep) for ep in episodes]
    not_alternating = [f"{r['id']}: {why}" for r in sharegpt if (why := sharegpt_alternation_problem(r))]
    counts: dict[str, Any] = {"sharegpt": write_jsonl(sharegpt, out / "sharegpt.jsonl"),
              "openai_finetune": write_jsonl((to_openai_finetune(ep) for ep in episodes),
                                             out / "openai_finetune.jsonl"),
              "toolbench": len(write_toolbench_answers(episodes, out / "toolbench"))}
    by_tool: dict[str, list[Episode]] = {}
    refused: list[str] = []
    for ep in episodes:
        if tool_of and ep.id in tool_of:
            try:
                to_toolalpaca_instance(ep)
            except RecordError as e:
                refused.append(f"{e.record_id}: {e.reason}")
                continue
            by_tool.setdefault(tool_of[ep.id], []).append(ep)
    entries = [toolalpaca_entry(t, by_tool[t.id]) for t in tools or [] if t.id in by_tool]
    (out / "toolalpaca.json").write_text(json.dumps(redact_obj(entries), ensure_ascii=False, indent=2),
                                         encoding="utf-8")
    counts["toolalpaca"] = sum(len(e["Instances"]) for e in entries)
    if refused:
        counts["refused"] = {"toolalpaca": refused}
    if not_alternating:  # written all the same (the format holds them); LLaMA-Factory would skip them
        counts["sharegpt_not_alternating"] = not_alternating
    return counts


def read_toolbench_answers(folder: str | Path) -> list[Episode]:
    return [answer_to_episode(p) for p in sorted(Path(folder).glob("*.json"))]
