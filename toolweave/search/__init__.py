"""Solving instructions with tools: the environment, CoT chains and DFSDT tree search."""
from __future__ import annotations

from toolweave.config import ExecutorConfig, SolveConfig
from toolweave.executors.base import Executor
from toolweave.llm.types import CallTag, ChatModel
from toolweave.schemas import Episode, Instruction, Tool
from toolweave.search.chain import chain_search
from toolweave.search.dfsdt import TreeSearch, initial_messages, search_episode
from toolweave.search.env import StepResult, ToolEnv


async def solve_instruction(instruction: Instruction, tools: list[Tool], llm: ChatModel, executor: Executor,
                            cfg: SolveConfig, *, env_cfg: ExecutorConfig | None = None,
                            episode_id: str | None = None) -> Episode:
    """Solve one instruction with `cfg.method` (dfsdt | cot). Never raises for model or tool
    misbehaviour: those are recorded on the tree's nodes and in the episode's status and errors."""
    env_cfg = env_cfg or ExecutorConfig()
    env = ToolEnv(tools, executor, observation_limit=env_cfg.observation_limit, compress=env_cfg.compress,
                  llm=llm if env_cfg.compress == "llm" else None)
    eid = episode_id or f"{instruction.id}-{cfg.method}"
    tag = CallTag(stage="solve", episode=eid, role="assistant")
    common = dict(max_steps=cfg.max_steps, max_llm_calls=cfg.max_llm_calls, tool_choice=cfg.tool_choice, tag=tag)
    if cfg.method == "cot":
        search = chain_search(env, llm, **common)
    elif cfg.method == "dfsdt":
        search = TreeSearch(env, llm, width=cfg.width, **common)
    else:
        raise ValueError(f"unknown solve method {cfg.method!r}")
    root = await search.run(initial_messages(instruction, tools))
    return search_episode(search, root, instruction, method=cfg.method, episode_id=eid,
                          model=str(getattr(llm, "model", "")),
                          extra={"width": search.width, "max_steps": cfg.max_steps,
                                 "max_llm_calls": cfg.max_llm_calls, "tool_choice": cfg.tool_choice})


__all__ = ["solve_instruction", "ToolEnv", "StepResult", "TreeSearch", "chain_search", "initial_messages"]
