"""ToolBench / StableToolBench answer files <-> our Episode.

An answer file (`*_DFS_woFilter_w2.json`, `*_CoT@1.json`) holds the search tree (or CoT tries) and
`answer_generation.train_messages`: one training example per assistant turn of the chosen path, in the
old OpenAI `function_call` format, each keeping only the *latest* diversity prompt (`valid: false`
user message) before its end (ToolBench's `sift_first_invalid_message`).

We keep the chosen path's valid messages as OpenAI `tool_calls` messages, and in
`extra["toolbench"]` just what exact reconstruction needs: the diversity prompts with their
positions, where each training example ends, and whether a `content: null` key was written.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from toolweave import safe_read
from toolweave.schemas import Episode, RecordError

FINISH = "Finish"

# ToolBench's observation codes (Downstream_tasks/rapidapi.py) -> our step statuses
OBSERVATION_STATUS = {
    0: "ok", 1: "hallucinated_function", 2: "invalid_arguments", 3: "finish_answer",
    4: "finish_give_up", 5: "timeout", 6: "error", 7: "error", 8: "error", 9: "error", 10: "error",
    11: "error", 12: "error", -1: "llm_error",
}


def _load(answer: dict | str | Path) -> tuple[dict, str]:
    if isinstance(answer, dict):
        return answer, "<dict>"
    p = Path(answer)
    try:
        return json.loads(safe_read.read_text(p)), _group_prefix(p) + p.name  # no FIFO, bounded
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
        raise RecordError("episode", str(p), f"cannot read ToolBench answer file: {e}") from None


def _group_prefix(p: Path) -> str:
    # Query ids restart in each group: G1_answer/10_... and G2_answer/10_... are different queries.
    m = re.match(r"(G\d)_", p.parent.name)
    return f"{m.group(1)}_" if m else ""


def _source_id(name: str) -> str:
    # "57_ChatGPT_DFS_woFilter_w2.json" -> "57"; "G2_10_ChatGPT_..." -> "G2_10"; "1073_CoT@1.json" -> "1073"
    stem = name.rsplit(".", 1)[0]
    m = re.match(r"(G\d_)?([^_]+)", stem)
    return (m.group(1) or "") + m.group(2) if m else stem


# --- messages: function_call <-> tool_calls ----------------------------------------------------

def _call_id(i: int) -> str:
    return f"call_{i}"


def _to_openai(messages: list[dict]) -> list[dict]:
    """ToolBench function_call messages -> OpenAI tool_calls messages (ids call_<n>, in order)."""
    out: list[dict] = []
    n = 0
    for m in messages:
        role = m.get("role")
        if role == "assistant" and "function_call" in m:
            fc = m["function_call"]
            out.append({"role": "assistant", "content": m.get("content"),
                        "tool_calls": [{"id": _call_id(n), "type": "function",
                                        "function": {"name": fc.get("name", ""),
                                                     "arguments": fc.get("arguments", "")}}]})
            n += 1
        elif role == "function":
            out.append({"role": "tool", "tool_call_id": _call_id(max(n - 1, 0)),
                        "name": m.get("name", ""), "content": m.get("content")})
        else:
            out.append({k: v for k, v in m.items() if k != "valid"})
    return out


def _to_toolbench(messages: list[dict], null_content_key: bool) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            args = fn.get("arguments", "")
            msg: dict[str, Any] = {"role": "assistant"}
            if m.get("content") is not None or null_content_key:
                msg["content"] = m.get("content")
            msg["function_call"] = {"name": fn.get("name", ""),
                                    "arguments": args if isinstance(args, str) else json.dumps(args)}
            out.append(msg)
        elif role == "tool":
            out.append({"role": "function", "name": m.get("name", ""), "content": m.get("content")})
        else:
            out.append(dict(m))
    return out


def _sift_invalid(messages: list[dict]) -> list[dict]:
    """Keep every valid message and only the last invalid one (ToolBench's rule)."""
    out: list[dict] = []
    kept_invalid = False
    for m in reversed(messages):
        if m.get("valid", True) is False:
            if kept_invalid:
                continue
            kept_invalid = True
        out.append(m)
    return out[::-1]


# --- tree ----------------------------------------------------------------------------------

def _flatten_tree(root: dict) -> list[dict]:
    """Nested ToolBench tree -> node dicts in pre-order (the order DFS created them)."""
    nodes: list[dict] = []
    stack: list[tuple[dict, int | None]] = [(root, None)]
    while stack:
        node, parent = stack.pop()
        nid = len(nodes)
        code = node.get("observation_code")
        flat = {k: v for k, v in node.items() if k != "children"}
        flat.update(id=nid, parent=parent, status=OBSERVATION_STATUS.get(code, "ok") if code is not None else None,
                    valid=not node.get("pruned", False),
                    message={"node_type": node.get("node_type"), "description": node.get("description", "")})
        nodes.append(flat)
        for child in reversed(node.get("children") or []):
            stack.append((child, nid))
    return nodes


_OUR_NODE_KEYS = ("id", "parent", "status", "valid", "message")


def _nest_tree(nodes: list[dict]) -> dict | None:
    if not nodes:
        return None
    built: dict[int, dict] = {}
    root = None
    for n in nodes:
        tb = {k: v for k, v in n.items() if k not in _OUR_NODE_KEYS}
        tb["children"] = []
        built[n["id"]] = tb
        if n["parent"] is None:
            root = tb
        else:
            built[n["parent"]]["children"].append(tb)
    return root


def _chain_nodes(trys: list[dict]) -> list[dict]:
    """CoT tries (StableToolBench): each try's chain becomes one branch under a synthetic root."""
    nodes = [{"id": 0, "parent": None, "depth": 0, "node_type": "root", "status": None, "valid": True,
              "message": {"node_type": "root", "description": ""}, "pruned": False}]
    for t, attempt in enumerate(trys):
        parent = 0
        for node in attempt.get("chain") or []:
            code = node.get("observation_code")
            flat = dict(node)
            flat.update(id=len(nodes), parent=parent, attempt=t,
                        status=OBSERVATION_STATUS.get(code, "ok") if code is not None else None,
                        valid=not node.get("pruned", False),
                        message={"node_type": node.get("node_type"), "description": node.get("description", "")})
            nodes.append(flat)
            parent = flat["id"]
    return nodes


# --- answer file -> Episode --------------------------------------------------------------------

def _parse_finish(final_answer: str) -> tuple[str | None, str]:
    """The Finish call's arguments -> (return_type, answer text); tolerant of broken JSON."""
    if not final_answer:
        return None, ""
    try:
        obj = json.loads(final_answer, strict=False)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        return obj.get("return_type"), str(obj.get("final_answer") or "")
    return None, final_answer


def answer_to_episode(answer: dict | str | Path, *, instruction_id: str | None = None) -> Episode:
    """Read one ToolBench / StableToolBench answer file (DFSDT tree or CoT tries) as an Episode."""
    data, name = _load(answer)
    ag = data.get("answer_generation")
    if not isinstance(ag, dict):
        raise RecordError("episode", name, "no answer_generation object (not a ToolBench answer file)")
    qid = instruction_id or _source_id(name)
    train = ag.get("train_messages")
    train_list = train if isinstance(train, list) else []

    # Valid messages of the chosen path: the longest example without its diversity prompts.
    valid_path: list[dict] = []
    invalid: list[dict] = []  # {"before": n valid messages before it, "message": ...}
    train_ends: list[int] = []
    for example in train_list:
        n_valid = 0
        for m in example:
            if m.get("valid", True) is False:
                entry = {"before": n_valid, "message": m}
                if entry not in invalid:
                    invalid.append(entry)
            else:
                if n_valid >= len(valid_path):
                    valid_path.append(m)
                elif valid_path[n_valid] != m:
                    raise RecordError("episode", qid, "train_messages are not prefixes of one path")
                n_valid += 1
        train_ends.append(n_valid)
    invalid.sort(key=lambda e: e["before"])  # stable: same position keeps file order

    null_content_key = any("content" in m and m["content"] is None
                           for m in valid_path if m.get("role") == "assistant" and "function_call" in m)
    messages = _to_openai(valid_path)
    if not messages and ag.get("query"):
        messages = [{"role": "user", "content": ag["query"]}]

    final_type, final_text = _parse_finish(ag.get("final_answer") or "")
    finish_type = ag.get("finish_type") or ("give_answer" if final_type == "give_answer" else None)
    if not ag.get("valid_data") or not train_list:
        status = "no_answer"
    elif finish_type == "give_up" or final_type == "give_up_and_restart":
        status = "gave_up"
    else:
        status = "answered"

    if isinstance(data.get("tree"), dict):
        tree = _flatten_tree(data["tree"].get("tree") or {})
        method = "dfsdt"
    elif isinstance(data.get("trys"), list):
        tree = _chain_nodes(data["trys"])
        method = "cot"
    else:
        tree, method = None, "imported"

    tools = [{"type": "function", "function": f} for f in ag.get("function") or []]
    total = int(ag.get("total_tokens") or 0)
    kept = {k: data[k] for k in ("win", "forward_args", "compare_candidates", "try_count") if k in data}
    if isinstance(data.get("trys"), list):
        kept["tries_meta"] = [{k: v for k, v in t.items() if k != "chain"} for t in data["trys"]]
    if isinstance(data.get("tree"), dict):
        kept["tree_size"] = data["tree"].get("size")
        kept["tree_max_length"] = data["tree"].get("max_length")
    kept["answer_generation"] = {k: ag[k] for k in ("valid_data", "finish_type", "final_answer", "chain",
                                                    "total_tokens", "query_count") if k in ag}
    kept["has_train_messages"] = "train_messages" in ag
    kept.update(invalid_messages=invalid, train_ends=train_ends, null_content_key=null_content_key,
                source_file=name)
    return Episode(
        id=f"toolbench-{method}-{qid}", instruction_id=qid, method=method, query=ag.get("query") or "",
        status=status, final_answer=final_text if status == "answered" else "",
        messages=messages, tools=tools, tree=tree, model="ChatGPT" if "ChatGPT" in name else "",
        llm_calls=int(ag.get("query_count") or 0),
        # ToolBench records only the total; we count it as prompt tokens rather than invent a split.
        prompt_tokens=total, completion_tokens=0, extra={"toolbench": kept},
    )


# --- Episode -> ToolBench ----------------------------------------------------------------------

def episode_to_train_messages(ep: Episode) -> list[list[dict]]:
    """The episode as ToolBench `train_messages`: one function_call-format example per assistant turn.

    For imported episodes this reproduces the file's list exactly; for our own episodes every
    assistant message ends one example and diversity prompts (never in `messages`) are absent.
    """
    tb = ep.extra.get("toolbench") or {}
    path = _to_toolbench(ep.messages, bool(tb.get("null_content_key", True)))
    if "train_ends" in tb:
        ends = list(tb["train_ends"])
    else:
        ends = [i + 1 for i, m in enumerate(path) if m.get("role") == "assistant"]
    invalid = tb.get("invalid_messages") or []
    examples = []
    for end in ends:
        full: list[dict] = []
        pending = [e for e in invalid]
        for i, m in enumerate(path[:end]):
            while pending and pending[0]["before"] == i:
                full.append(dict(pending.pop(0)["message"]))
            full.append(m)
        examples.append(_sift_invalid(full))
    return [[dict(m) for m in ex] for ex in examples]


def _steps_from_messages(messages: list[dict]) -> list[dict]:
    """Nodes of a ToolBench-style chain (Thought / Action / Action Input) from our messages."""
    chain: list[dict] = []
    depth = 0
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        if m.get("content"):
            depth += 1
            chain.append({"is_terminal": False, "pruned": False, "finished": False, "depth": depth,
                          "node_type": "Thought", "description": m["content"], "Elo": 1000.0})
        for call in (m.get("tool_calls") or [])[:1]:
            obs = next((x.get("content") for x in messages[i + 1:] if x.get("role") == "tool"
                        and x.get("tool_call_id") == call.get("id")), "")
            depth += 1
            chain.append({"is_terminal": False, "pruned": False, "finished": False, "depth": depth,
                          "node_type": "Action", "description": call["function"]["name"], "Elo": 1000.0})
            depth += 1
            args = call["function"].get("arguments", "")
            chain.append({"is_terminal": False, "pruned": False, "finished": False, "depth": depth,
                          "node_type": "Action Input", "Elo": 1000.0,
                          "description": args if isinstance(args, str) else json.dumps(args),
                          "observation": obs or ""})
    return chain


def toolbench_method_name(method: str) -> str:
    """The method as ToolBench names its answer files and converted answers."""
    return "CoT@1" if method == "cot" else "DFS_woFilter_w2"


def _finish_as_written(ep: Episode) -> str | None:
    """The last Finish call's arguments as the model wrote them (ToolBench's `final_answer`)."""
    for m in reversed(ep.messages):
        for call in reversed(m.get("tool_calls") or []) if m.get("role") == "assistant" else []:
            fn = call.get("function") or {}
            if fn.get("name") == FINISH:
                args = fn.get("arguments", "")
                return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return None


def _own_tree_to_toolbench(nodes: list[dict]) -> dict:
    """Our search's nodes (one per assistant turn) as ToolBench's tree: per turn a Thought node when
    the reply has content, then Action and Action Input (the observation) when it calls a function."""
    def new(node_type: str, description: str, depth: int, **kw: Any) -> dict:
        return {"is_terminal": False, "pruned": False, "finished": False, "depth": depth, "node_type": node_type,
                "description": description, "Elo": 1000.0, **kw, "children": []}

    root = new("Action Input", "", 0)
    tail: dict[int, dict] = {}  # our node id -> the ToolBench node its children hang under
    for n in nodes:
        if n.get("parent") is None:
            tail[n["id"]] = root
            continue
        cur = tail.get(n["parent"], root)
        message = n.get("message") or {}
        if message.get("content") is not None:
            cur["children"].append(new("Thought", message["content"], cur["depth"] + 1))
            cur = cur["children"][-1]
        if n.get("function") is not None:
            cur["children"].append(new("Action", n["function"], cur["depth"] + 1))
            cur = cur["children"][-1]
            cur["children"].append(new("Action Input", n.get("arguments") or "", cur["depth"] + 1,
                                       observation=n.get("observation") or "",
                                       observation_code=n.get("status_code")))
            cur = cur["children"][-1]
        tail[n["id"]] = cur
    return root


def _pre_order(root: dict) -> list[dict]:
    """A nested ToolBench tree's nodes below its root, in pre-order, without `children`: a CoT chain."""
    out: list[dict] = []
    stack = list(reversed(root.get("children") or []))
    while stack:
        node = stack.pop()
        out.append({k: v for k, v in node.items() if k != "children"})
        stack.extend(reversed(node.get("children") or []))
    return out


def episode_to_toolbench_answer(ep: Episode, *, as_searched: bool = False) -> dict:
    """Export an Episode as a ToolBench answer file (the shape ToolEval and ToolBench's loaders read).

    `as_searched` (what ToolEval is shown under the toolbench preset): for our own episodes
    `final_answer` is Finish's arguments as the model wrote them and the tree is the explored one
    (ToolEval takes the steps of an episode without valid data from it). Without it (the export
    stage, whose files tests/training/test_toolllama_steps.py pins): the answer re-serialised and the
    chosen path as the tree."""
    tb = ep.extra.get("toolbench") or {}
    ag_kept = tb.get("answer_generation") or {}
    written = _finish_as_written(ep) if as_searched and ep.status in ("answered", "gave_up") else None
    if "final_answer" in ag_kept:
        final_answer = ag_kept["final_answer"]
    elif written is not None:
        final_answer = written
    elif ep.status == "answered":
        final_answer = json.dumps({"return_type": "give_answer", "final_answer": ep.final_answer}, indent=2)
    elif ep.status == "gave_up":
        final_answer = json.dumps({"return_type": "give_up_and_restart"}, indent=2)
    else:
        final_answer = ""
    ag: dict[str, Any] = {
        "valid_data": ag_kept.get("valid_data", ep.status in ("answered", "gave_up")),
        "query_count": ep.llm_calls,
        "total_tokens": ag_kept.get("total_tokens", ep.prompt_tokens + ep.completion_tokens),
        "final_answer": final_answer,
        "finish_type": ag_kept.get("finish_type", "give_up" if ep.status == "gave_up" else "give_answer"),
        "function": [t.get("function", t) for t in ep.tools],
        "chain": ag_kept.get("chain", []),
        "query": ep.query,
    }
    if tb.get("has_train_messages", ep.status in ("answered", "gave_up")):
        ag["train_messages"] = episode_to_train_messages(ep)
    out: dict[str, Any] = {"win": tb.get("win", ep.status == "answered")}
    if ep.method == "cot" and "try_count" in tb:
        out["try_count"] = tb["try_count"]
        tries: dict[int, list[dict]] = {}
        for n in ep.tree or []:
            if n.get("parent") is not None:
                tries.setdefault(n.get("attempt", 0), []).append(
                    {k: v for k, v in n.items() if k not in _OUR_NODE_KEYS + ("attempt",)})
        meta = tb.get("tries_meta") or [{} for _ in tries]
        out["trys"] = [{"chain": tries.get(t, []), **m} for t, m in enumerate(meta)]
    elif as_searched and ep.method == "cot":  # ToolBench's CoT files carry their try as `trys`, where
        # ToolEval reads an episode without valid data (convert_to_answer_format.py process_invalid_data)
        own = ep.tree and "function" in ep.tree[0]
        chain = _pre_order(_own_tree_to_toolbench(ep.tree)) if own else _steps_from_messages(ep.messages)
        out["try_count"] = 1
        out["trys"] = [{"chain": chain, "win": ep.status == "answered"}]
    elif ep.tree and "node_type" in ep.tree[0]:
        out["tree"] = {"size": tb.get("tree_size", len(ep.tree)), "max_length": tb.get("tree_max_length"),
                       "tree": _nest_tree(ep.tree)}
    elif as_searched and ep.tree and "function" in ep.tree[0]:  # our own search's explored tree
        out["tree"] = {"size": len(ep.tree), "max_length": max((n.get("depth") or 0 for n in ep.tree), default=0),
                       "tree": _own_tree_to_toolbench(ep.tree)}
    else:  # no tree: one chain, the chosen path
        chain = _steps_from_messages(ep.messages)
        root = {"is_terminal": False, "pruned": False, "finished": False, "depth": 0,
                "node_type": "Action Input", "description": "", "Elo": 1000.0, "children": []}
        cur = root
        for node in chain:
            node = dict(node, children=[])
            cur["children"].append(node)
            cur = node
        out["tree"] = {"size": len(chain) + 1, "max_length": len(chain) + 1, "tree": root}
    out["forward_args"] = tb.get("forward_args", {})
    out["compare_candidates"] = tb.get("compare_candidates", [])
    out["answer_generation"] = ag
    return out


# ToolBench's preprocess (preprocess_toolllama_data.py) asserts that the system message holds this
# clause, its spelling included, and rewrites the prompt around it; our own search's prompt is worded
# differently, so the export puts the clause first where it is missing.
TOOLBENCH_STEP_CLAUSE = "with a function call to actually excute your step."
TOOLBENCH_STEP_LINE = f"At each step, give your thought and what to do next, {TOOLBENCH_STEP_CLAUSE}"


def toolbench_ready(ep: Episode) -> Episode:
    """The episode with ToolBench's step clause in its system message (unchanged when it has it)."""
    messages = [dict(m) for m in ep.messages]
    system = next((m for m in messages if m.get("role") == "system"), None)
    if system is None:
        messages.insert(0, {"role": "system", "content": TOOLBENCH_STEP_LINE})
    elif TOOLBENCH_STEP_CLAUSE not in str(system.get("content") or ""):
        system["content"] = f"{TOOLBENCH_STEP_LINE}\n{system.get('content') or ''}"
    else:
        return ep
    return ep.model_copy(update={"messages": messages})
