"""ToolEval's converted-answer format, built and read as ToolBench's own scripts do.

* `convert_answer`: `tooleval/convert_to_answer_format.py` (ToolBench d56fdd8 / StableToolBench aa4ed9f)
  on one raw answer file. Valid data: the last `train_messages` example as a chain of system, user,
  `tool` ({name, arguments, response}; Finish's response '') and `assistant` (replies without a call)
  nodes. Invalid data: one random walk through the explored tree (DFS: Thought -> assistant, Action +
  its first Action Input -> tool, anything else kept as it is) or one random CoT try. `total_steps` is
  the walk's node count, system and user included; `final_answer` is Finish's arguments as written.
  StableToolBench's superset is followed (`tool` messages skipped, `tool_calls` replies read); for
  ToolBench's function_call answers both scripts give the same. The walk's randomness is
  `random.Random(seed)`: the script seeds 42 on import, so `seed=42` reproduces it on a file run alone.
* `get_steps`, `has_no_hallucination`, `ends_with_finish`: what `eval_pass_rate.py` does with a
  converted answer before judging it.
"""
from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from typing import Any

from toolweave.schemas import RecordError

FINISH = "Finish"
CONVERT_SEED = 42  # convert_to_answer_format.py: random.seed(42) on import


@dataclass(eq=False)  # identity, as ExecutionNode compares node ids
class _Node:
    role: Any
    message: Any
    adj: list["_Node"] = field(default_factory=list)


def _init_nodes(functions: Any, query: Any) -> tuple[_Node, _Node]:
    # the system message's text never reaches the output (convert_to_dict writes '' for system / user)
    system, user = _Node("system", None), _Node("user", query)
    system.adj.append(user)
    return system, user


def _walk(start: _Node, rng: random.Random) -> list[_Node]:
    """reduce_graph_to_sequence: from the start node, a random child at each step to a leaf."""
    seq, node = [start], start
    while node.adj:
        node = rng.choice(node.adj)
        seq.append(node)
    return seq


def _as_dict(seq: list[_Node]) -> list[dict[str, Any]]:
    """convert_to_dict of the walk: one nested chain."""
    out: list[dict[str, Any]] = []
    for node in reversed(seq):
        message = "" if node.role in ("system", "user") else node.message
        out = [{"role": node.role, "message": message, "next": out}]
    return out


def _valid_chain(conversation: list[dict[str, Any]], last: _Node, where: str) -> None:
    index, node = 2, None
    while index < len(conversation):
        message = conversation[index]
        role = message.get("role")
        if role in ("system", "user", "function", "tool"):
            index += 1
            continue
        if role != "assistant":
            raise RecordError("converted_answer", where, f"unknown role {role!r} in train_messages")
        if "function_call" in message:
            call = message["function_call"]
            if call["name"] != FINISH and index + 1 >= len(conversation):
                raise RecordError("converted_answer", where, f"call of {call['name']!r} without its response")
            node = _Node("tool", {"name": call["name"], "arguments": call["arguments"],
                                  "response": conversation[index + 1]["content"] if call["name"] != FINISH else ""})
            index += 1
        elif message.get("tool_calls") is not None:
            for tc in message["tool_calls"]:
                name, arguments = tc["function"]["name"], tc["function"]["arguments"]
                if name == FINISH:
                    node = _Node("tool", {"name": name, "arguments": arguments, "response": ""})
                    break
                reply = next((m for m in conversation[index + 1:]
                              if m.get("role") == "tool" and m.get("tool_call_id") == tc["id"]), None)
                if reply is not None:
                    node = _Node("tool", {"name": name, "arguments": arguments, "response": reply["content"]})
                    last.adj.append(node)
                    last = node
            if node is None:
                raise RecordError("converted_answer", where, "a tool_calls reply with no answered call")
        else:
            node = _Node("assistant", message.get("content"))
        index += 1
        if node is not last:
            last.adj.append(node)
            last = node


def _dfs_tree(tree: dict[str, Any]) -> _Node:
    children = tree.get("children") or []
    if not children:
        return _Node(tree["node_type"], tree)
    nodes = [_dfs_tree(c) for c in children]
    tree["children"] = None
    return _Node(tree["node_type"], tree, nodes)


def _purify(node: _Node, where: str) -> None:
    if node.role == "Action":
        for adj in node.adj:
            if adj.role == "Action Input":
                node.role = "tool"
                node.message = {"name": node.message["description"], "arguments": adj.message["description"],
                                "response": adj.message["observation"]}
                node.adj = [n for n in node.adj if n is not adj] + adj.adj
                break
    elif node.role == "Thought":
        node.role, node.message = "assistant", node.message["description"]
    elif node.role not in ("Action Input", "system", "user"):
        raise RecordError("converted_answer", where, f"unknown tree node type {node.role!r}")
    for adj in node.adj:
        _purify(adj, where)


def _cot_chain(chain: list[dict[str, Any]], last: _Node, where: str) -> None:
    index = 0
    while index < len(chain):
        message = chain[index]
        if message["node_type"] == "Action":
            nxt = chain[index + 1]
            node = _Node("tool", {"name": message["description"], "arguments": nxt["description"],
                                  "response": nxt["observation"]})
            index += 1
        elif message["node_type"] == "Thought":
            node = _Node("assistant", message["description"])
        else:
            raise RecordError("converted_answer", where, f"unknown node_type {message['node_type']!r}")
        index += 1
        last.adj.append(node)
        last = node


def convert_answer(data: dict[str, Any], method: str, *, seed: int = CONVERT_SEED,
                   where: str = "<answer>") -> dict[str, Any]:
    """One raw answer file -> `{query, available_tools, answer: {method, total_steps, final_answer,
    answer_details}}`, as convert_to_answer_format.py writes it (see the module docstring)."""
    rng = random.Random(seed)
    try:
        data = copy.deepcopy(data)
        ag = data["answer_generation"]
        functions, query = ag["function"], ag["query"]
        system, user = _init_nodes(functions, query)
        if ag["valid_data"]:
            _valid_chain(ag["train_messages"][-1], user, where)
        elif "CoT" in method or "cot" in method:
            _cot_chain(rng.choice(data["trys"])["chain"], user, where)
        elif "DFS" in method or "dfs" in method:
            user.adj.extend(_dfs_tree(child) for child in data["tree"]["tree"]["children"])
            _purify(user, where)
        else:
            raise RecordError("converted_answer", where, f"unknown method {method!r} (neither CoT nor DFS)")
        seq = _walk(system, rng)
        final_answer = ag["final_answer"]
    except (KeyError, IndexError, TypeError) as e:
        raise RecordError("converted_answer", where, f"not a ToolBench answer file: {e!r}") from None
    return {"query": query, "available_tools": functions,
            "answer": {"method": method, "total_steps": len(seq), "final_answer": final_answer,
                       "answer_details": _as_dict(seq)}}


# --- reading a converted answer as eval_pass_rate.py does --------------------------------------

def has_no_hallucination(available_tools: list[dict[str, Any]], answer: dict[str, Any]) -> bool:
    """rtl.py `check_has_hallucination`, in place: each `tool` node's dict message becomes `str(dict)`,
    in order, up to the first node calling a function not offered. eval_pass_rate.py counts any
    exception (no name in a message, a node without `next`) as no hallucination."""
    try:
        names = {tool["name"] for tool in available_tools}

        def check(nodes: Any) -> bool:
            if isinstance(nodes, dict):
                if nodes["role"] == "tool":
                    if isinstance(nodes["message"], dict):
                        nodes["message"] = str(nodes["message"])
                    if re.findall(r"'name':\s*'(.*?)'", nodes["message"], re.DOTALL)[0] not in names:
                        return False
                return check(nodes["next"])
            if isinstance(nodes, list):
                return all(check(n) for n in nodes)
            raise ValueError(f"Unknown node type {type(nodes)}")

        return check(answer["answer_details"])
    except Exception:  # noqa: BLE001 -- the reference's bare except
        return True


def get_steps(answer: dict[str, Any]) -> tuple[str, str]:
    """utils.py `get_steps`: ("Step 1: <tool message>\\n...", "Final step: <last tool message>") along
    each node's first `next`, tool nodes with a non-empty message only."""
    node = answer["answer_details"][0]
    steps: list[str] = []
    final = ""
    while "next" in node:
        message = node["message"]
        if message and node["role"] == "tool":
            steps.append(f"Step {len(steps) + 1}: {message}")
            final = f"Final step: {message}"
        if not node["next"]:
            break
        node = node["next"][0]
    return "\n".join(steps), final


def ends_with_finish(final_step: str) -> bool:
    """eval_pass_rate.py judges an answer only when its final step shows a Finish call."""
    return "'name': 'Finish'" in final_step
