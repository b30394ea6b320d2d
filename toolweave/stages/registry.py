"""The stages, in chain order: the one list of them. Config checks, the CLI (`toolweave <stage>`,
`toolweave run`), the chains and the runners all read `STAGES`. A new stage is a new
`toolweave/stages/<stage>.py` declaring `STAGE`, one line here, and its `ray_jobs/<stage>.py`."""
from __future__ import annotations

from toolweave import io
from toolweave.config import RunConfig
from toolweave.placement import Placed
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


def places(cfg: RunConfig) -> frozenset[Placed]:
    """What the config's stages place on the cluster (`Stage.placed`): every stage's when `stages`
    is empty (a stage job of any of them may run it). Unknown names place nothing (`chain` says so)."""
    stages = [STAGES[n] for n in cfg.stages if n in STAGES] if cfg.stages else STAGES.values()
    return frozenset().union(*(s.placed for s in stages))


def held(cfg: RunConfig, name: str) -> bool:
    """The run dir (local or an object store) already holds dataset `name`: part files of a record
    dataset, anything at all of a files one or of one no stage declares."""
    kinds = {d.name: d.kind for s in STAGES.values() for d in (*s.reads, *s.writes)}
    path = cfg.path(name)
    return bool(io.part_files(path)) if kinds.get(name) is not None else io.exists(path)


def input_problems(cfg: RunConfig) -> list[str]:
    """One line per stage of the chain whose input no earlier stage writes, the run dir does not
    hold and no `fed_by` setting feeds (a stage whose input is optional is never one)."""
    problems = []
    for i, stage in enumerate(chain(cfg.stages)):
        if stage.inputs_optional or stage.fed(cfg):
            continue
        choices = stage.input_choices(cfg)
        written = {d.name for s in chain(cfg.stages[:i]) for d in s.writes}
        if written.intersection(choices) or any(held(cfg, name) for name in choices):
            continue
        writers = [s.name for s in STAGES.values() if any(d.name in choices for d in s.writes) and s is not stage]
        fixes = ([f"add {_either(writers)} before {stage.name}"] if writers else []) + \
            [f"set {key}" for key in stage.fed_by] + [f"point run_dir at a run that holds {_either(choices)}"]
        where = (f"{io.location(cfg.path(choices[0]))} does not hold" if len(choices) == 1
                 else f"the run dir {io.location(cfg.path())} holds none of them")
        problems.append(f"{stage.name} reads {_either(choices)}, which no stage before it writes and {where}: "
                        f"{', or '.join(fixes)}")
    return problems


def _either(names: list[str] | tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def context(cfg: RunConfig, stage: Stage | str) -> StageContext:
    """What the runner hands `stage` in this config's chain: its datasets resolved under the run dir,
    its upstream dataset (`upstream`) among its inputs."""
    stage = STAGES[stage] if isinstance(stage, str) else stage
    return stage_context(cfg, stage, upstream(cfg, stage))


def chain_problems(cfg: RunConfig) -> list[str]:
    """One line per problem of the config's chain (said before any stage runs): `stages:` must name
    declared stages; a chain that makes SFT data must verify the episodes first unless
    `verify.require: []`; one that evaluates with retrieved tools must have a retriever; each stage's
    input must come from an earlier stage, the run dir or a setting (`input_problems`)."""
    from toolweave.curation.verify import unverified_chain
    chain(cfg.stages)
    problems = []
    problem = unverified_chain(cfg) if "sft_data" in cfg.stages else None
    if problem:
        problems.append(f"sft_data: {problem}")
    problem = evaluate.chain_problem(cfg)  # the retrieved tools setting needs a retriever first
    if problem:
        problems.append(problem)
    ins = cfg.instructions
    if "instructions" in cfg.stages and ins.style == "toolbench" and "I3" in ins.modes and not ins.collections:
        problems.append("instructions: I3 needs instructions.collections (name -> tool ids) and none is "
                        "configured: add them, or drop I3 from instructions.modes")
    return problems + input_problems(cfg)


def check_config(cfg: RunConfig) -> RunConfig:
    """`cfg`, or a ValueError with the first of its `chain_problems` (an unknown stage included)."""
    problems = chain_problems(cfg)
    if problems:
        raise ValueError(problems[0])
    return cfg
