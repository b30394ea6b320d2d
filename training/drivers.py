"""The drivers of the stages that train (declared with `driver_on_ray` in toolweave/stages/): they need
tokenizers, torch, Ray Train or Tune, so they live on this side of the layers and the runner binds
them to their declarations here. Each imports its module when the stage runs, not with the CLI."""
from __future__ import annotations

import dataclasses

from toolweave.stages import retriever, sft_data, sweep, train
from toolweave.stage_context import StageContext
from toolweave.stages.declaration import Runtime, Stage, Summary


def build_sft_rows(ctx: StageContext, runtime: Runtime) -> Summary:
    from training.sft_data import run
    return run(ctx)


def train_model(ctx: StageContext, runtime: Runtime) -> Summary:
    from training.trainer import run
    return run(ctx)


def tune_trainings(ctx: StageContext, runtime: Runtime) -> Summary:
    from training.sweep import run
    return run(ctx)


def train_retriever(ctx: StageContext, runtime: Runtime) -> Summary:
    from training.retriever import run
    return run(ctx)


DRIVERS = {sft_data.STAGE.name: build_sft_rows, train.STAGE.name: train_model, sweep.STAGE.name: tune_trainings,
           retriever.STAGE.name: train_retriever}


def bind(stage: Stage) -> Stage:
    """The stage with its driver, when its declaration leaves that to this side."""
    if not stage.driver_on_ray or stage.driver is not None:
        return stage
    if stage.name not in DRIVERS:
        raise KeyError(f"stage {stage.name} declares driver_on_ray but training.drivers has no driver for it")
    return dataclasses.replace(stage, driver=DRIVERS[stage.name])
