"""The stages, in chain order: the one list of them. Config checks, the CLI (`toolweave <stage>`,
`toolweave run`), the chains and the runners all read `STAGES`. A new stage is a new
`toolweave/stages/<stage>.py` declaring `STAGE`, one line here, and its `ray_jobs/<stage>.py`."""
from __future__ import annotations

from toolweave.config import RunConfig
from toolweave.stages import (build_toolset, evaluate, export, instructions, retriever, sft_data, simulate, solve,
                              sweep, train, verify)
from toolweave.stages.declaration import Stage

STAGES: dict[str, Stage] = {s.name: s for s in (
    build_toolset.STAGE,
    instructions.STAGE,
    simulate.STAGE,
    solve.STAGE,
    verify.STAGE,
    sft_data.STAGE,
    export.STAGE,
    train.STAGE,
    sweep.STAGE,
    retriever.STAGE,
    evaluate.STAGE,
)}


def chain(names: list[str]) -> list[Stage]:
    """The stages `names` lists, in that order; an unknown name is a one-line error listing the known."""
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    return [STAGES[n] for n in names]


def check_config(cfg: RunConfig) -> RunConfig:
    """A config's `stages:` must name declared stages, a chain that makes SFT data must verify the
    episodes first unless `verify.require: []`, and one that evaluates with retrieved tools must
    have a retriever (said before any stage runs)."""
    from toolweave.curation.verify import unverified_chain
    chain(cfg.stages)
    problem = unverified_chain(cfg) if "sft_data" in cfg.stages else None
    if problem:
        raise ValueError(f"sft_data: {problem}")
    problem = evaluate.chain_problem(cfg)  # the retrieved tools setting needs a retriever first
    if problem:
        raise ValueError(problem)
    ins = cfg.instructions
    if "instructions" in cfg.stages and ins.style == "toolbench" and "I3" in ins.modes and not ins.collections:
        raise ValueError("instructions: I3 needs instructions.collections (name -> tool ids) and none is "
                         "configured: add them, or drop I3 from instructions.modes")
    return cfg
