"""Stage sft_data: verified_episodes/ (episodes/ with `verify.require: []`) -> sft/ (`training.sft_data.run`:
render each episode in `sft.format`, tokenize with exact loss masks, pack); unusable episodes, and
those that failed a required verification check (`verify.require`, `verify.toolbench_rule`) ->
sft_rejects/ with the reason."""
from __future__ import annotations

from toolweave.config import RunConfig
from toolweave.schemas import Episode, Reject, SFTExample, VerifiedEpisode
from toolweave.stages.declaration import Dataset, Runtime, Stage, Summary


def run(cfg: RunConfig, runtime: Runtime) -> Summary:
    from training.sft_data import run as build_sft_rows  # tokenizers load with the stage, not the CLI
    return build_sft_rows(cfg)


STAGE = Stage("sft_data", reads=(Dataset("verified_episodes", VerifiedEpisode), Dataset("episodes", Episode)), driver=run,
              writes=(Dataset("sft", SFTExample), Dataset("sft_rejects", Reject)))
