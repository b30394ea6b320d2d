"""CoT / ReAct with native tool calls: one chain of steps, no backtracking (ToolBench's
`single_chain.py`). It is the tree search with width 1, so statuses and budgets mean the same."""
from __future__ import annotations

from toolweave.llm.types import ChatModel
from toolweave.search.dfsdt import TreeSearch
from toolweave.search.env import ToolEnv


def chain_search(env: ToolEnv, llm: ChatModel, *, max_steps: int, max_llm_calls: int,
                 tool_choice: str | dict = "required", **kw) -> TreeSearch:
    return TreeSearch(env, llm, width=1, max_steps=max_steps, max_llm_calls=max_llm_calls,
                      tool_choice=tool_choice, **kw)
