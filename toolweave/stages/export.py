"""Stage export: the episodes sft_data would train on (`verify.require` / `verify.toolbench_rule`;
verified_episodes/, else episodes/) -> export/ in every format: ShareGPT, OpenAI fine-tuning JSONL,
ToolAlpaca instance files, ToolBench answer files (`toolweave.curation.verify_export.run_export`)."""
from __future__ import annotations

from toolweave.schemas import Episode, Instruction, Tool, VerifiedEpisode
from toolweave.stage_context import StageContext
from toolweave.stages.declaration import Dataset, Runtime, Stage, Summary


def run(ctx: StageContext, runtime: Runtime) -> Summary:
    from toolweave.curation.verify_export import run_export
    return run_export(ctx)


STAGE = Stage("export", reads=(Dataset("verified_episodes", VerifiedEpisode), Dataset("episodes", Episode),
                               Dataset("toolsets", Tool), Dataset("instructions", Instruction)),
              writes=(Dataset("export"),), driver=run)
