"""Stage sweep: sft/ -> sweep/ (`training.sweep.run`, bound on the Ray side by `training.drivers`:
Ray Tune with ASHA over `sweep.space`, one TorchTrainer a trial; results.csv and best.json)."""
from __future__ import annotations

from toolweave.schemas import SFTExample
from toolweave.stages.declaration import Dataset, Stage

STAGE = Stage("sweep", reads=(Dataset("sft", SFTExample),), writes=(Dataset("sweep"),), driver_on_ray=True,
              places=("train_workers",), fed_by=("train.data",))
