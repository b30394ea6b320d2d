"""Stage sft_data: episodes/ -> sft/ (`training.sft_data.run`: render each episode in `sft.format`,
tokenize with exact loss masks, pack); unusable episodes -> sft_rejects/ with the reason."""
from __future__ import annotations

from toolweave.config import RunConfig
from toolweave.schemas import Episode, Reject, SFTExample
from toolweave.stages.declaration import Dataset, Runtime, Stage, Summary


def run(cfg: RunConfig, runtime: Runtime) -> Summary:
    from training.sft_data import run as build_sft_rows  # tokenizers load with the stage, not the CLI
    return build_sft_rows(cfg)


STAGE = Stage("sft_data", reads=(Dataset("episodes", Episode),), driver=run,
              writes=(Dataset("sft", SFTExample), Dataset("sft_rejects", Reject)))
