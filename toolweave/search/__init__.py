"""Solving instructions with tools: the environment, CoT chains and DFSDT tree search."""
from __future__ import annotations

from toolweave.config import ExecutorConfig, SolveConfig
from toolweave.executors.base import Executor
from toolweave.llm.types import CallTag, ChatModel
from toolweave.schemas import Episode, Function, Instruction, Tool
from toolweave.search.chain import chain_search
from toolweave.search.dfsdt import TreeSearch, initial_messages, search_episode
from toolweave.search.env import EnvOptions, StepResult, ToolEnv


async def solve_instruction(instruction: Instruction, tools: list[Tool], llm: ChatModel, executor: Executor,
                            cfg: SolveConfig, *, env_cfg: ExecutorConfig | None = None,
                            episode_id: str | None = None, stage: str = "") -> Episode:
    """Solve one instruction with `cfg.method` (dfsdt | cot). Never raises for model or tool
    misbehaviour: those are recorded on the tree's nodes and in the episode's status and errors.
    `stage`: the stage whose call this is (its LLM calls are tagged with it; evaluate's solving has its own)."""
    env_cfg = env_cfg or ExecutorConfig()
    env = ToolEnv(tools, executor, observation_limit=env_cfg.observation_limit, compress=env_cfg.compress,
                  llm=llm if env_cfg.compress == "llm" else None, options=env_options(env_cfg, cfg),
                  offered=offered_functions(instruction, tools) if cfg.functions == "api_list" else None,
                  stage=stage)
    eid = episode_id or f"{instruction.id}-{cfg.method}"
    tag = CallTag(stage=stage, episode=eid, role="assistant")
    common = dict(max_steps=cfg.max_steps, max_llm_calls=cfg.max_llm_calls, tool_choice=cfg.tool_choice, tag=tag,
                  temperature=cfg.temperature, max_tokens=cfg.max_tokens, depth_unit=cfg.depth_unit,
                  prompts=cfg.prompts, give_up_seed=cfg.seed if cfg.give_up_pick == "random" else None)
    if cfg.method == "cot":
        search = chain_search(env, llm, **common)
    elif cfg.method == "dfsdt":
        search = TreeSearch(env, llm, width=cfg.width, **common)
    else:
        raise ValueError(f"unknown solve method {cfg.method!r}")
    root = await search.run(initial_messages(instruction, tools, cfg.prompts))
    return search_episode(search, root, instruction, method=cfg.method, episode_id=eid,
                          model=str(getattr(llm, "model", "")),
                          extra={"width": search.width, "max_steps": cfg.max_steps,
                                 "max_llm_calls": cfg.max_llm_calls, "tool_choice": cfg.tool_choice,
                                 "depth_unit": cfg.depth_unit})


def env_options(env_cfg: ExecutorConfig, cfg: SolveConfig) -> EnvOptions:
    return EnvOptions(functions="toolbench" if cfg.prompts == "toolbench" else "openai",
                      argument_check=env_cfg.argument_check, finish_check=env_cfg.finish_check,
                      name_match=env_cfg.name_match, observation_format=env_cfg.observation_format,
                      response_limit=env_cfg.response_limit, response_mode=env_cfg.response_mode)


def offered_functions(instruction: Instruction, tools: list[Tool]) -> list[tuple[Tool, Function]]:
    """The query's own api_list (ToolBench offers only those APIs, in that order); all functions of
    the tools when the instruction has none."""
    by_id = {t.id: t for t in tools}
    pairs = []
    for ref in instruction.extra.get("api_list") or []:
        tool = by_id.get(ref.get("tool")) if isinstance(ref, dict) else None
        fn = tool.function(ref.get("function")) if tool is not None else None
        if fn is not None:
            pairs.append((tool, fn))
    return pairs or [(t, f) for t in tools for f in t.functions]


__all__ = ["solve_instruction", "ToolEnv", "EnvOptions", "StepResult", "TreeSearch", "chain_search", "initial_messages"]
