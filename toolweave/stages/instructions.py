"""Stage instructions: toolsets/ -> instructions/. `instructions.style` picks the generator:
toolalpaca (`toolweave.authoring.instructions.toolalpaca_instructions`, one tool per record) or toolbench
(`toolbench_instructions`, one sampled API group per record; the samples are drawn once, before the
records, into `instructions_samples/`). ToolBench query files (`instructions.import_queries`) are
imported beside them. After the records: dedupe and the holdout splits over all of them. ToolAlpaca
evaluation files (`instructions.import_toolalpaca_eval`) are test cases as the files say: their tools get no
generated instruction, their questions keep their split, outside the dedupe and the holdout."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import ApiSampleRow, Instruction, Record, RecordError, Reject, Tool
from toolweave.stage_context import StageContext
from toolweave.stages.base import RecordWorker, reject_for
from toolweave.stages.declaration import Dataset, Stage
from toolweave.stages.episodes import record_rng


class InstructionWorker(RecordWorker):
    """A Tool row (toolalpaca style) or an ApiSampleRow (toolbench style) -> Instructions."""

    stage = "instructions"

    async def setup(self) -> None:
        from toolweave.authoring.instructions import load_seeds
        if self.cfg.instructions.style == "toolbench":
            self.seeds = load_seeds(self.cfg.instructions.seed_file)

    async def process(self, row: dict[str, Any]) -> list[Record]:
        from toolweave.authoring.instructions import ApiSample, toolalpaca_instructions, toolbench_instructions
        from toolweave.evaluation.toolalpaca_inputs import is_eval_tool
        rng = record_rng(self.cfg.seed, str(row.get("id")))
        if self.cfg.instructions.style == "toolbench":
            s = ApiSampleRow.from_row(row)
            sample = ApiSample(s.mode, s.group, [Tool.from_row(t) for t in json.loads(s.tools)])
            return list(await toolbench_instructions(sample, self.client("builder"), self.seeds,
                                                     self.cfg.instructions, rng=rng, stage=self.stage))
        try:
            tool = Tool.from_row(row)
        except RecordError as e:
            return [reject_for(self.stage, row, str(e))]
        if is_eval_tool(tool):  # its questions are the imported test cases; it stays unseen in training
            return []
        return list(await toolalpaca_instructions(tool, self.client("builder"), self.cfg.instructions, rng=rng,
                                                  stage=self.stage))


def input_dataset(cfg: RunConfig) -> str:
    return "toolsets" if cfg.instructions.style == "toolalpaca" else "instructions_samples"


def prepare(ctx: StageContext) -> dict[str, int]:
    cfg = ctx.cfg
    notes = _import_queries(cfg, ctx.name) | _import_toolalpaca_eval(cfg)
    if cfg.instructions.style == "toolbench":
        notes.update(_write_api_samples(cfg))
    source = cfg.path(input_dataset(cfg))
    if not io.part_files(source) and not notes.get("imported_instructions") \
            and not notes.get("imported_eval_cases"):  # inputs_optional: said here
        raise ValueError(f"stage instructions: nothing to make: no input at {source} (instructions.modes "
                         f"{cfg.instructions.modes}) and no query imported (instructions.import_queries, "
                         "import_toolalpaca_eval)")
    return notes


def _import_queries(cfg: RunConfig, stage: str) -> dict[str, int]:
    """ToolBench query files (`instructions.import_queries`) -> tools, and instructions as they are
    beside the generated ones in `instructions_raw/`: the dedupe and the holdout splits (`finish`)
    cover them too, so a run whose generation yields little still has a test split."""
    if not cfg.instructions.import_queries:
        return {}
    from toolweave.authoring.instructions import import_toolbench_queries
    counts: dict[str, int] = {}
    for n, path in enumerate(cfg.instructions.import_queries):
        _write_imported(cfg, f"queries-import-{n}-{Path(path).stem}", import_toolbench_queries(path, stage=stage),
                        "instructions_raw", counts, ("imported_query_tools", "imported_instructions", "import_rejects"))
    return counts


def _write_imported(cfg: RunConfig, key: str, imported: tuple[list[Tool], list[Instruction], list[Reject]],
                    instructions_to: str, counts: dict[str, int], counted_as: tuple[str, str, str]) -> None:
    """An import's tools, instructions (into `instructions_to`) and rejects as parts named `key` (a
    rerun rewrites them), their sizes added to `counts` under `counted_as` (tools, instructions, rejects)."""
    for records, dataset, kind, name in zip(imported, ("toolsets", instructions_to, "instructions_rejects"),
                                            (Tool, Instruction, Reject), counted_as):
        io.write_part(records, cfg.path(dataset), kind, name=key)
        counts[name] = counts.get(name, 0) + len(records)


def _import_toolalpaca_eval(cfg: RunConfig) -> dict[str, int]:
    """ToolAlpaca evaluation files (`instructions.import_toolalpaca_eval`) -> their tools in `toolsets/`,
    one test instruction per question (with its golden answers) straight into `instructions/`: the
    cases are ToolAlpaca's, so neither the dedupe nor the holdout touches them. A rerun rewrites the
    same parts."""
    files = cfg.instructions.import_toolalpaca_eval
    if not files:
        return {}
    from toolweave.evaluation.toolalpaca_inputs import import_eval_file, is_eval_tool
    imported = [import_eval_file(f.file, f.golden) for f in files]
    eval_tools = {t.id: f.file for f, (tools, _, _) in zip(files, imported) for t in tools}
    held, _ = io.read_records(cfg.path("toolsets"), Tool)
    seen = sorted({t.id for t in held if t.id in eval_tools and not is_eval_tool(t)})
    if seen:  # it would be trained on, and two tools would share its id: refused before anything is written
        raise ValueError(f"stage instructions: instructions.import_toolalpaca_eval: tools {seen} (of "
                         f"{sorted({eval_tools[t] for t in seen})}) are already in {cfg.path('toolsets')} from "
                         "this run's catalogue or imports; ToolAlpaca evaluates on tools unseen in training: "
                         "evaluate in a run dir of its own, or leave them out of the catalogue")
    counts: dict[str, int] = {}
    for n, (f, records) in enumerate(zip(files, imported)):
        _write_imported(cfg, f"toolalpaca-eval-{n}-{Path(f.file).stem}", records, "instructions", counts,
                        ("imported_eval_tools", "imported_eval_cases", "eval_import_rejects"))
    return counts


def _write_api_samples(cfg: RunConfig) -> dict[str, int]:
    """ToolBench style: sample API groups (I1/I2/I3) once, deterministically, as the inputs."""
    from toolweave.authoring.instructions import sample_api_groups
    from toolweave.evaluation.toolalpaca_inputs import is_eval_tool
    out = cfg.path("instructions_samples")
    if io.part_files(out):  # sampled by an earlier (killed) run: keep its samples
        return {"api_samples": len(io.existing_ids(out))}
    tools, _ = io.read_records(cfg.path("toolsets"), Tool)
    tools = [t for t in tools if not is_eval_tool(t)]  # the evaluation's tools stay unseen
    samples = sample_api_groups(tools, cfg.instructions, rng=record_rng(cfg.seed, "api-samples"))
    # the position keeps ids unique when the sampler draws one group twice
    rows = [ApiSampleRow(id=f"{i:06d}-{s.id}", mode=s.mode, group=s.group,
                         tools=json.dumps([t.to_row() for t in s.tools])) for i, s in enumerate(samples)]
    io.write_part(rows, out, ApiSampleRow, name="samples")
    return {"api_samples": len(rows)}


def finish(ctx: StageContext) -> dict[str, Any]:
    """Global steps after generation: dedupe the generated instructions and assign the splits,
    written as one deterministic part of `instructions/` (a rerun rewrites it)."""
    cfg = ctx.cfg
    from toolweave.authoring.instructions import assign_splits, dedupe_instructions
    from toolweave.evaluation.toolalpaca_inputs import is_eval_tool
    from toolweave.authoring.near_dup import dedupe_counts
    raw, bad = io.read_records(cfg.path("instructions_raw"), Instruction)
    tools, _ = io.read_records(cfg.path("toolsets"), Tool)
    tools = [t for t in tools if not is_eval_tool(t)]  # no generated instruction touches one: not held out
    kept, dups = dedupe_instructions(sorted(raw, key=lambda i: i.id), cfg.instructions.near_dup_threshold,
                                     stage=ctx.name)
    final = assign_splits(kept, tools, cfg.instructions, cfg.seed)
    rejects = dups + [Reject(id=f"{ctx.name}:unreadable:{e.record_id}", stage=ctx.name,
                             reason=str(e)) for e in bad]
    io.write_part(final, cfg.path("instructions"), Instruction, name="generated")
    io.write_part(rejects, cfg.path("instructions_rejects"), Reject, name="dedupe")
    splits: dict[str, int] = {}
    for i in final:
        splits[i.split] = splits.get(i.split, 0) + 1
    return {"instructions": len(final), "duplicates": len(dups), **dedupe_counts(dups), "splits": splits}


STAGE = Stage("instructions", reads=(Dataset("toolsets", Tool), Dataset("instructions_samples", ApiSampleRow)),
              writes=(Dataset("instructions_raw", Instruction), Dataset("instructions", Instruction)),
              roles=("builder",), worker=InstructionWorker, input=input_dataset, prepare=prepare, finish=finish,
              shaped_by=("instructions.style",), inputs_optional=True)  # may only import (modes: [])
