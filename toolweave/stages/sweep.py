"""Stage sweep: sft/ -> sweep/ (`training.sweep.run`: Ray Tune with ASHA over `sweep.space`, one
TorchTrainer a trial; results.csv and best.json)."""
from __future__ import annotations

from toolweave.schemas import SFTExample
from toolweave.stages.declaration import Dataset, Stage


def tune_trainings(cfg, runtime):
    import training.sweep
    return training.sweep.run(cfg)


STAGE = Stage("sweep", reads=(Dataset("sft", SFTExample),), writes=(Dataset("sweep"),), driver=tune_trainings)
