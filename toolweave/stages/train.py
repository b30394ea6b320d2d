"""Stage train: sft/ -> train/ (checkpoints), model/ (Hugging Face format): `training.trainer.run`,
Ray Train + DeepSpeed. A rerun of a finished training trains nothing."""
from __future__ import annotations

from toolweave.schemas import SFTExample
from toolweave.stages.declaration import Dataset, Stage


def run(cfg, runtime):
    from training import trainer  # torch and DeepSpeed load when the stage runs, not with the CLI
    return trainer.run(cfg)


STAGE = Stage("train", reads=(Dataset("sft", SFTExample),), writes=(Dataset("train"), Dataset("model")), driver=run)
