"""The stages, in chain order: the one list of them. Config checks, the CLI (`toolweave <stage>`,
`toolweave run`), the chains and the runners all read `STAGES`. A new stage is a new
`toolweave/stages/<stage>.py` declaring `STAGE`, one line here, and its `ray_jobs/<stage>.py`."""
from __future__ import annotations

from toolweave.config import RunConfig
from toolweave.stages import (build_toolset, dedupe, evaluate, export, instructions, retriever, sft_data, simulate,
                              solve, sweep, train, verify)
from toolweave.stage_context import StageContext, stage_context
from toolweave.stages.declaration import Dataset, Stage

STAGES: dict[str, Stage] = {s.name: s for s in (
    build_toolset.STAGE,
    instructions.STAGE,
    simulate.STAGE,
    solve.STAGE,
    verify.STAGE,
    dedupe.STAGE,
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


def upstream(cfg: RunConfig, stage: Stage) -> Dataset | None:
    """The dataset `stage` takes its records from in this config's chain: the last one that a stage
    before it writes whose record kind is one `stage` reads (sft_data: dedupe's deduped_episodes
    when dedupe runs before it, else verify's verified_episodes, else solve's episodes); None when
    no stage before it writes one, or the chain does not list `stage`."""
    kinds = tuple(d.kind for d in stage.reads if d.kind is not None)
    names = cfg.stages[:cfg.stages.index(stage.name)] if stage.name in cfg.stages else []
    written = [d for s in chain([n for n in names if n in STAGES]) for d in s.writes
               if d.kind is not None and kinds and issubclass(d.kind, kinds)]
    return written[-1] if written else None


def context(cfg: RunConfig, stage: Stage | str) -> StageContext:
    """What the runner hands `stage` in this config's chain: its datasets resolved under the run dir,
    its upstream dataset (`upstream`) among its inputs."""
    stage = STAGES[stage] if isinstance(stage, str) else stage
    return stage_context(cfg, stage, upstream(cfg, stage))


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
