"""Per-record stages: what each reads, writes and runs (one place to look a stage up).

`record_stage_plan(cfg, stage)` prepares inputs on the driver and says which worker class to
run over which dataset; the runners (Ray Data in `ray_jobs/pipeline.py`, in-process asyncio in
`toolweave/stages/local.py`) take it from there, and `write_summary` ends the stage.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Record, Tool
from toolweave.stages import prepare
from toolweave.stages.base import Progress, StageIO, load_worker_class, stage_io
from toolweave.stages.workers import WORKERS

RECORD_STAGES = ("build_toolset", "instructions", "simulate", "solve")


@dataclass
class RecordStagePlan:
    io: StageIO
    worker: str  # "module:Class" of a RecordWorker
    filter_columns: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # what the driver-side preparation did

    def wants(self, cfg: RunConfig):
        cls = load_worker_class(self.worker)
        fn = getattr(cls, "wants", None)
        return None if fn is None else (lambda row: fn(cfg, row))


def _io(cfg: RunConfig, stage: str, inputs: list[str], output: str, cls: type[Record]) -> StageIO:
    # generated instructions land in instructions_raw/ until dedupe; their rejects beside the final set
    return stage_io(cfg, stage, inputs, output, cls, rejects=f"{output.removesuffix('_raw')}_rejects")


def record_stage_plan(cfg: RunConfig, stage: str, output: str | None = None) -> RecordStagePlan:
    """Driver-side preparation of a per-record stage, and its plan. Raises ValueError when the
    stage has nothing to read (the message says which dataset or config key is missing).

    `output` (simulate, solve): another episodes dataset than `episodes/`, e.g. `eval_episodes/`; it
    gets its own ledger and part names (`<stage>-<output>`), so resume and exactly-once commits work
    for it as for `episodes/` and neither run's orphan cleanup touches the other's parts."""
    if output is not None and stage not in ("simulate", "solve"):
        raise ValueError(f"stage {stage}: only simulate and solve take another output dataset")
    if stage == "build_toolset":
        notes = prepare.prepare_catalogue(cfg)
        notes.update(_import_toolsets(cfg))
        plan = RecordStagePlan(_io(cfg, stage, ["catalogue"], "toolsets", Tool), WORKERS[stage], notes=notes)
    elif stage == "instructions":
        notes = _import_queries(cfg)
        if cfg.instructions.style == "toolalpaca":
            plan = RecordStagePlan(_io(cfg, stage, ["toolsets"], "instructions_raw", Instruction),
                                   WORKERS["instructions.toolalpaca"], notes=notes)
        else:
            notes.update(_write_api_samples(cfg))
            plan = RecordStagePlan(_io(cfg, stage, ["instructions_samples"], "instructions_raw", Instruction),
                                   WORKERS["instructions.toolbench"], notes=notes)
    elif stage in ("simulate", "solve"):
        name = stage if output is None else f"{stage}-{output}"
        plan = RecordStagePlan(_io(cfg, name, ["instructions"], output or "episodes", Episode), WORKERS[stage],
                               filter_columns=["split"])
    else:
        raise ValueError(f"{stage!r} is not a per-record stage (those are {', '.join(RECORD_STAGES)})")
    _check_inputs(plan)
    return plan


def _check_inputs(plan: RecordStagePlan) -> None:
    from toolweave.io import part_files
    if not any(part_files(p) for p in plan.io.inputs) and plan.io.stage != "build_toolset":
        names = ", ".join(str(p) for p in plan.io.inputs)
        raise ValueError(f"stage {plan.io.stage}: no input dataset at {names}; run the stage that "
                         f"writes it first (or point run_dir at a run that has it)")


def _import_toolsets(cfg: RunConfig) -> dict[str, int]:
    """`toolsets.sources` (ToolAlpaca / OpenAPI / ToolBench / OpenAI tool files) -> `toolsets/`."""
    if not cfg.toolsets.sources:
        return {}
    from toolweave import io
    from toolweave.schemas import Reject
    from toolweave.toolsets import import_paths
    from toolweave.schemas import CatalogueEntry
    res = import_paths(cfg.toolsets.sources)
    io.write_part(res.tools, cfg.path("toolsets"), Tool, name="toolsets-import")
    io.write_part(res.rejects, cfg.path("toolsets_rejects"), Reject, name="toolsets-import")
    # catalogue files among the sources feed this stage's builder, like `toolsets.catalogue`
    io.write_part(res.catalogue, cfg.path("catalogue"), CatalogueEntry, name="sources-import")
    return {"imported_tools": len(res.tools), "import_rejects": len(res.rejects),
            "imported_catalogue_entries": len(res.catalogue)}


def _import_queries(cfg: RunConfig) -> dict[str, int]:
    """ToolBench query files (`instructions.import_queries`) -> tools, and instructions as they are
    beside the generated ones in `instructions_raw/`: the dedupe and the holdout splits
    (`finish_instructions`) cover them too, so a run whose generation yields little still has a
    test split."""
    if not cfg.instructions.import_queries:
        return {}
    from toolweave import io
    from toolweave.instructions import import_toolbench_queries
    from toolweave.schemas import Reject
    counts = {"imported_instructions": 0, "imported_query_tools": 0, "import_rejects": 0}
    for n, path in enumerate(cfg.instructions.import_queries):
        tools, instructions, rejects = import_toolbench_queries(path)
        key = f"queries-import-{n}-{Path(path).stem}"
        io.write_part(tools, cfg.path("toolsets"), Tool, name=key)
        io.write_part(instructions, cfg.path("instructions_raw"), Instruction, name=key)
        io.write_part(rejects, cfg.path("instructions_rejects"), Reject, name=key)
        counts["imported_instructions"] += len(instructions)
        counts["imported_query_tools"] += len(tools)
        counts["import_rejects"] += len(rejects)
    return counts


def _write_api_samples(cfg: RunConfig) -> dict[str, int]:
    """ToolBench style: sample API groups (I1/I2/I3) once, deterministically, as the inputs."""
    from toolweave import io
    from toolweave.instructions import sample_api_groups
    from toolweave.stages.workers import record_rng
    out = cfg.path("instructions_samples")
    if io.part_files(out):  # sampled by an earlier (killed) run: keep its samples
        return {"api_samples": len(io.existing_ids(out))}
    tools, _ = io.read_records(cfg.path("toolsets"), Tool)
    samples = sample_api_groups(tools, cfg.instructions, rng=record_rng(cfg.seed, "api-samples"))
    # the position keeps ids unique when the sampler draws one group twice
    rows = [ApiSampleRow(id=f"{i:06d}-{s.id}", mode=s.mode, group=s.group,
                         tools=json.dumps([t.to_row() for t in s.tools])) for i, s in enumerate(samples)]
    io.write_part(rows, out, ApiSampleRow, name="samples")
    return {"api_samples": len(rows)}


class ApiSampleRow(Record):
    """One ToolBench API sample as a dataset row (the input of toolbench-style generation)."""

    KIND: ClassVar[str] = "api_sample"
    mode: str
    group: str
    tools: str  # JSON list of Tool rows (only the sampled functions)

    def to_sample(self):
        from toolweave.instructions import ApiSample
        return ApiSample(self.mode, self.group, [Tool.from_row(t) for t in json.loads(self.tools)])


import pyarrow as pa  # noqa: E402

ApiSampleRow.ARROW = pa.schema([("id", pa.string()), ("mode", pa.string()), ("group", pa.string()),
                                ("tools", pa.string())])


def finish_instructions(cfg: RunConfig) -> dict[str, int]:
    """Global steps after generation: dedupe the generated instructions and assign the splits,
    written as one deterministic part of `instructions/` (a rerun rewrites it)."""
    from toolweave import io
    from toolweave.instructions import assign_splits, dedupe_instructions
    from toolweave.schemas import Reject
    raw, bad = io.read_records(cfg.path("instructions_raw"), Instruction)
    tools, _ = io.read_records(cfg.path("toolsets"), Tool)
    kept, dups = dedupe_instructions(sorted(raw, key=lambda i: i.id), cfg.instructions.near_dup_threshold)
    final = assign_splits(kept, tools, cfg.instructions, cfg.seed)
    rejects = dups + [Reject(id=f"instructions:unreadable:{e.record_id}", stage="instructions",
                             reason=str(e)) for e in bad]
    io.write_part(final, cfg.path("instructions"), Instruction, name="generated")
    io.write_part(rejects, cfg.path("instructions_rejects"), Reject, name="dedupe")
    splits: dict[str, int] = {}
    for i in final:
        splits[i.split] = splits.get(i.split, 0) + 1
    return {"instructions": len(final), "duplicates": len(dups), "splits": splits}


def finish_record_stage(cfg: RunConfig, stage: str) -> dict[str, Any]:
    """Driver-side work after the pipeline (global steps that need every record)."""
    if stage == "instructions":
        return finish_instructions(cfg)
    return {}


def write_summary(cfg: RunConfig, stage: str, progress: Progress, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The end-of-stage summary, also written as JSON beside the stage's dataset."""
    summary = progress.summary(cfg.llm.prices, cfg.llm.endpoint("default").model)
    summary.update(extra or {})
    path = cfg.path(f"{stage}_summary.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary
