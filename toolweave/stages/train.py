"""Stage train: sft/ -> train/ (checkpoints), model/ (Hugging Face format): `training.trainer.run`,
Ray Train + DeepSpeed, bound on the Ray side (`training.drivers`). A rerun of a finished training
trains nothing."""
from __future__ import annotations

from toolweave.schemas import SFTExample
from toolweave.stages.declaration import Dataset, Stage

STAGE = Stage("train", reads=(Dataset("sft", SFTExample),), writes=(Dataset("train"), Dataset("model")),
              driver_on_ray=True, places=("train_workers",), fed_by=("train.data",))
