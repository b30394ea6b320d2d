"""DFSDT (ToolLLM): depth-first search over a decision tree of function calls, as ToolBench's
`Algorithms/DFS.py` does it with `with_filter=False`.

One node is one assistant turn (its call and the observation). From a node we ask the model for up
to `width` children in turn and descend into each at once (pre-order). A leaf at `max_steps` or a
failed model call returns one level; a `give_up_and_restart` prunes the node and returns two; the
first `give_answer` ends the search; reaching `max_llm_calls` ends it too. When a node that already
has children is expanded again, the request carries the diversity prompt listing the earlier
children's actions and observations; that prompt stays out of the children's context, so every
request is its parent's request extended by one assistant turn and its tool result (prefix caching).
CoT is the same search with width 1: one chain, no backtracking.

Depth: `depth_unit="turn"` (toolweave's default) counts assistant turns. `depth_unit="level"` counts
ToolBench's tree levels: a turn adds a Thought node when the reply has content (even empty), and an
Action plus an Action Input node when it calls a function, so ToolBench's 12 levels are 4 calls with
thoughts and 6 without. `prompts="toolbench"` uses ToolBench's own system and diversity prompts
(and its `json.dumps` of the earlier candidates).
"""
from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

from toolweave.llm.types import CallTag, ChatModel, ChatReply, LLMError
from toolweave.prompts import render
from toolweave.search import toolbench as tb
from toolweave.search.env import HALLUCINATED_NAME, StepResult, ToolEnv
from toolweave.schemas import Episode, Instruction, Tool

FINAL_ANSWER_BACK = 2  # ToolBench: levels to go back after a final answer / a give-up
PRUNE_BACK = 2
STOP = 100_000  # a return value that unwinds the whole recursion
VALID_STATUSES = ("ok", "finish_answer", "finish_give_up", "timeout", "error")


@dataclass
class Node:
    id: int
    parent: "Node | None"
    depth: int
    context: list[dict[str, Any]]  # valid messages up to and including this node's turn
    message: dict[str, Any] | None = None  # the assistant turn (as kept in the context)
    observation: str = ""
    status: str = "root"
    status_code: int | None = None
    call_name: str | None = None  # the name the model wrote (before hallucination renaming)
    arguments: str | None = None
    final_answer: str | None = None
    pruned: bool = False
    terminal: bool = False
    expand_num: int | None = None
    llm_call: int | None = None  # index of the request that produced this node
    diversity: bool = False  # that request carried the diversity prompt
    diversity_text: str | None = None  # ... this one (ToolBench keeps the latest in its train_messages)
    children: list["Node"] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent.id if self.parent else None, "depth": self.depth,
                "message": self.message, "observation": self.observation, "status": self.status,
                "status_code": self.status_code, "function": self.call_name, "arguments": self.arguments,
                "pruned": self.pruned, "valid": self.status in VALID_STATUSES or self.status == "root",
                "terminal": self.terminal, "expand_num": self.expand_num, "llm_call": self.llm_call,
                "diversity": self.diversity}


def tool_descriptions(tools: list[Tool]) -> str:
    return "\n".join(f"{i}.{t.id}: {(t.description or t.name)[:512]}" for i, t in enumerate(tools, 1))


def initial_messages(instruction: Instruction, tools: list[Tool], prompts: str = "toolweave") -> list[dict[str, Any]]:
    if prompts == "toolbench":
        system = render("toolbench_system", tool_lines=tb.tool_lines(tools))
    else:
        system = render("assistant_system", tool_descriptions=tool_descriptions(tools))
    return [{"role": "system", "content": system}, {"role": "user", "content": f"\n{instruction.text}\nBegin!\n"}]


def turn_depth(message: dict[str, Any], called: bool, unit: str) -> int:
    """How many levels one assistant turn adds (see the module's docstring)."""
    if unit == "turn":
        return 1
    levels = (1 if message.get("content") is not None else 0) + (2 if called else 0)
    return max(levels, 1)  # ToolBench fails on a reply with neither; here it counts as one level


class TreeSearch:
    """One query's search. `run()` fills nodes, counters and the terminal / give-up lists."""

    def __init__(self, env: ToolEnv, llm: ChatModel, *, width: int, max_steps: int, max_llm_calls: int,
                 tool_choice: str | dict = "required", temperature: float | None = None,
                 max_tokens: int | None = None, tag: CallTag | None = None, depth_unit: str = "turn",
                 prompts: str = "toolweave", give_up_seed: int | None = None):
        """`give_up_seed`: without an answer, the episode keeps a give-up picked at random with this
        seed, as ToolBench's `to_json` does (`random.randint`); None keeps the first one."""
        if depth_unit not in ("turn", "level"):
            raise ValueError(f"depth_unit must be 'turn' or 'level', got {depth_unit!r}")
        self.depth_unit, self.prompts, self.give_up_seed = depth_unit, prompts, give_up_seed
        self.env, self.llm = env, llm
        self.width, self.max_steps, self.max_llm_calls = max(1, width), max_steps, max_llm_calls
        self.tool_choice, self.temperature, self.max_tokens = tool_choice, temperature, max_tokens
        self.tag = tag or CallTag(role="assistant")
        self.nodes: list[Node] = []
        self.terminal: list[Node] = []
        self.give_up: list[Node] = []
        self.max_step_leaves: list[Node] = []
        self.expansions = 0
        self.calls = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.budget_hit = False
        self.errors: list[str] = []
        self.requests: list[list[dict[str, Any]]] = []  # kept for tests / debugging (the messages sent)

    def new_node(self, parent: Node | None, context: list[dict[str, Any]], levels: int = 1, **kw: Any) -> Node:
        node = Node(id=len(self.nodes), parent=parent, depth=parent.depth + levels if parent else 0, context=context,
                    **kw)
        self.nodes.append(node)
        if parent is not None:
            parent.children.append(node)
        return node

    async def run(self, messages: list[dict[str, Any]]) -> Node:
        root = self.new_node(None, list(messages))
        await self.dfs(root)
        return root

    def diversity_message(self, node: Node) -> dict[str, Any] | None:
        tried = []
        for child in node.children:
            n = child
            while n.call_name is None and n.children:  # a turn without a call: look at what followed
                n = n.children[0]
            if n.call_name is not None:
                tried.append({"name": n.call_name, "arguments": n.arguments, "function_output": n.observation,
                              "mento-carlo-action-value": 0.0})
        if not tried:
            return None
        toolbench = self.prompts == "toolbench"
        text = json.dumps(tried, indent=2, ensure_ascii=toolbench) + "\n"
        if node.observation:
            text += f"again, your former observation: {node.observation}\n"
        if toolbench:
            return {"role": "user", "content": render("toolbench_diversity", previous_candidate=text)}
        return {"role": "user", "content": render("dfsdt_diversity", previous_candidates=text)}

    async def dfs(self, node: Node) -> int:
        node.expand_num = self.expansions
        self.expansions += 1
        if node.depth >= self.max_steps or node.pruned or node.terminal:
            if node.terminal:
                self.terminal.append(node)
                return FINAL_ANSWER_BACK
            node.pruned = True
            if node.status == "finish_give_up":
                self.give_up.append(node)
                return PRUNE_BACK
            if node.depth >= self.max_steps:
                self.max_step_leaves.append(node)
            return 1
        for _ in range(self.width):
            diversity = self.diversity_message(node) if node.children else None
            request = node.context + ([diversity] if diversity else [])
            reply, error = await self.ask(request)
            if self.calls >= self.max_llm_calls:  # ToolBench: the reply that hits the budget is dropped
                self.budget_hit = True
                return STOP
            child = await self.expand(node, reply, error, diversity is not None)
            child.diversity_text = diversity["content"] if diversity else None
            result = await self.dfs(child)
            if self.terminal:
                return STOP
            if result > 1:
                return result - 1
        return 1

    async def ask(self, request: list[dict[str, Any]]) -> tuple[ChatReply | None, str | None]:
        self.requests.append(request)
        self.calls += 1
        try:
            reply = await self.llm.chat(request, tools=self.env.openai_tools, tool_choice=self.tool_choice,
                                        temperature=self.temperature, max_tokens=self.max_tokens, tag=self.tag)
        except (LLMError, asyncio.TimeoutError) as e:
            msg = f"LLM call {self.calls} failed: {type(e).__name__}: {e}"[:500]
            self.errors.append(msg)
            return None, msg
        self.prompt_tokens += reply.usage.prompt_tokens
        self.completion_tokens += reply.usage.completion_tokens
        return reply, None

    async def expand(self, node: Node, reply: ChatReply | None, error: str | None, diversity: bool) -> Node:
        call_index = self.calls - 1
        if reply is None:  # ToolBench: a failed model call becomes a pruned node (go back one level)
            return self.new_node(node, node.context, status="llm_error", status_code=-1, pruned=True,
                                 observation=error or "", llm_call=call_index, diversity=diversity)
        content = reply.message.get("content")
        calls = reply.tool_calls
        if not calls:  # a thought without a call: a step all the same, the chain goes on from it
            message = {"role": "assistant", "content": content or ""}
            status = "no_action"
            if not (content or "").strip():
                self.errors.append(f"LLM call {call_index + 1}: empty reply (no content, no tool call)")
                status = "empty_reply"
            return self.new_node(node, node.context + [message], message=message, status=status,
                                 llm_call=call_index, diversity=diversity,
                                 levels=turn_depth(reply.message, False, self.depth_unit))
        if len(calls) > 1:
            self.errors.append(f"LLM call {call_index + 1}: {len(calls)} tool calls; only the first is run")
        call = calls[0]
        fn = call.get("function") or {}
        name = str(fn.get("name") or "")
        if self.env.options.name_match == "endswith" and "." in name:
            name = name.split(".")[-1]  # ToolBench's model wrapper drops a `functions.` prefix
        raw_args = fn.get("arguments")
        args_text = raw_args if isinstance(raw_args, str) else json.dumps(raw_args, ensure_ascii=False)
        result: StepResult = await self.env.step(name, raw_args)
        call_id = str(call.get("id") or f"call_{call_index}")
        shown = HALLUCINATED_NAME if result.status == "hallucinated_function" else name
        message = {"role": "assistant", "content": content,
                   "tool_calls": [{"id": call_id, "type": "function",
                                   "function": {"name": shown, "arguments": args_text}}]}
        tool_msg = {"role": "tool", "tool_call_id": call_id, "name": shown, "content": result.observation}
        return self.new_node(
            node, node.context + [message, tool_msg], message=message, observation=result.observation,
            status=result.status, status_code=result.status_code, call_name=name, arguments=args_text,
            final_answer=result.final_answer, terminal=result.status == "finish_answer",
            pruned=result.status == "finish_give_up", llm_call=call_index, diversity=diversity,
            levels=turn_depth(reply.message, True, self.depth_unit))

    # --- outcome ---------------------------------------------------------------------------

    def outcome(self) -> tuple[str, Node]:
        """(episode status, the node whose path the episode keeps)."""
        if self.terminal:
            return "answered", self.terminal[0]
        if self.budget_hit:
            status = "budget"
        elif self.give_up:
            status = "gave_up"
        elif self.max_step_leaves:
            status = "max_steps"
        else:
            status = "no_answer"
        if self.give_up:
            pick = 0 if self.give_up_seed is None else random.Random(self.give_up_seed).randint(0, len(self.give_up) - 1)
            return status, self.give_up[pick]
        deepest = max(self.nodes, key=lambda n: (n.depth, -n.id))
        return status, deepest


def toolbench_train_layout(chosen: Node) -> dict[str, Any]:
    """Where ToolBench's `get_train_messages_from_this_node` cuts the chosen path into examples, and
    which diversity prompts (invalid messages) each sees, in the layout `converters.toolbench` reads.

    ToolBench builds one example per Action Input node (up to its assistant message) and one per
    Thought node whose context ends with an assistant message after trailing user messages are
    dropped: a thought-only turn, and the Thought of a thought+call turn that follows one. Each node
    copies its parent's messages, so every diversity prompt sent from an ancestor before the path's
    child was made stays in the context, marked invalid; `sift_first_invalid_message` keeps the last.
    """
    path = []
    n: Node | None = chosen
    while n is not None:
        path.append(n)
        n = n.parent
    path.reverse()
    invalid, ends = [], []
    for parent, child in zip(path, path[1:]):
        for sibling in parent.children[: parent.children.index(child) + 1]:
            if sibling.diversity_text is not None:
                invalid.append({"before": len(parent.context),
                                "message": {"role": "user", "content": sibling.diversity_text, "valid": False}})
        turn = child.message or {}
        if child.call_name is None:  # a thought-only turn
            ends.append(len(child.context))
            continue
        if turn.get("content") is not None and parent.parent is not None and parent.call_name is None:
            ends.append(len(parent.context))  # the Thought node repeats the thought-only turn before it
        ends.append(len(parent.context) + 1)
    finish_type = "give_answer" if chosen.terminal else "give_up"
    return {"invalid_messages": invalid, "train_ends": ends, "null_content_key": True, "has_train_messages": True,
            # DFS.py's answer_generation: the final answer is the Finish call's arguments as written
            "answer_generation": {"valid_data": True, "finish_type": finish_type, "final_answer": chosen.arguments}}


def search_episode(search: TreeSearch, root: Node, instruction: Instruction, *, method: str,
                   episode_id: str, model: str, extra: dict[str, Any]) -> Episode:
    status, chosen = search.outcome()
    if search.prompts == "toolbench" and (chosen in search.terminal or chosen in search.give_up):
        extra = {**extra, "toolbench": toolbench_train_layout(chosen)}
    if all(n.status == "llm_error" for n in search.nodes[1:]) and len(search.nodes) > 1:
        status = "error"  # the model never answered: not the model's fault, a failed run
    return Episode(
        id=episode_id, instruction_id=instruction.id, method=method, query=instruction.text, status=status,
        final_answer=chosen.final_answer or "" if status == "answered" else "",
        messages=chosen.context, tools=search.env.openai_tools, tree=[n.to_dict() for n in search.nodes],
        model=model, split=instruction.split, llm_calls=search.calls, prompt_tokens=search.prompt_tokens,
        completion_tokens=search.completion_tokens, errors=search.errors,
        extra={**extra, "expansions": search.expansions, "chosen_node": chosen.id,
               "terminal_nodes": [n.id for n in search.terminal], "give_up_nodes": [n.id for n in search.give_up]})
