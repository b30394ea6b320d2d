"""What a stage is: the one `Stage` each `toolweave/stages/<stage>.py` declares, and the `Runtime` a
runner hands a stage (the run's engine, and how per-record stages run here: Ray Data or asyncio).

A stage is either per-record (a `worker` turns each input row into records; the runner streams the
rows through it and commits each batch exactly once) or a driver (`driver(cfg, runtime)` does the
whole job and returns its summary). `toolweave.stages.registry` lists every declared stage.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from toolweave.config import Role, RunConfig
from toolweave.llm.types import ChatModel
from toolweave.placement import Placed
from toolweave.stage_context import Dataset
from toolweave.stages.base import RecordWorker
from toolweave.stages.clients import lazy_clients

Summary = dict[str, Any]


@dataclass(frozen=True)
class Stage:
    name: str
    reads: tuple[Dataset, ...]
    # a per-record stage writes its records to writes[0], its Rejects to `<writes[0]>_rejects`
    writes: tuple[Dataset, ...]
    roles: tuple[Role, ...] = ()  # LLM roles it calls; none: the run's engine is not started for it
    worker: type[RecordWorker] | None = None  # per-record stage
    # driver stage: `driver(ctx, runtime)`, ctx the `toolweave.stage_context.StageContext` the runner
    # resolved from this declaration (typed readers / writers of its datasets, its name, the config)
    driver: Callable[[Any, Runtime], Summary] | None = None
    # a driver that needs Ray Train, Tune or torch lives on the Ray side: its declaration here says so
    # and `training.drivers.bind` gives it its driver (nothing under toolweave/ imports training)
    driver_on_ray: bool = False
    # driver-side steps of a per-record stage, before and after its records (imports, dedupe, splits)
    # (each given the stage's context, as a driver is)
    prepare: Callable[[Any], Summary] | None = None
    finish: Callable[[Any], Summary] | None = None
    # config keys whose values shape the output: a rerun with other values stops and says which changed
    shaped_by: tuple[str, ...] = ()
    input: Callable[[RunConfig], str] | None = None  # the input dataset, when the config picks it; else reads[0]
    select: Callable[[RunConfig, dict[str, Any]], bool] | None = None  # input rows to run (others: filtered)
    select_columns: tuple[str, ...] = ()  # the columns `select` reads
    inputs_optional: bool = False  # no input dataset is no error (build_toolset may only import)
    # run.limit caps its inputs; verify is exempt: it checks every episode the (limited) stages before it made
    limited: bool = True
    # work it places on the cluster besides the Serve replicas (`placed`: a per-record stage's episode
    # actors are derived); `toolweave.placement` checks it fits a node kind
    places: tuple[Placed, ...] = ()
    # dotted config keys that feed its input instead of a dataset (train.data): with one set, the chain
    # check (`registry.check_config`) does not ask an earlier stage or the run dir for the input
    fed_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.worker is None) == (self.driver is None and not self.driver_on_ray):
            raise TypeError(f"stage {self.name}: declare exactly one of worker (per record), driver or driver_on_ray")

    @property
    def per_record(self) -> bool:
        return self.worker is not None

    @property
    def placed(self) -> frozenset[Placed]:
        return frozenset(self.places) | ({"episode_actors"} if self.per_record else frozenset())

    def input_dataset(self, cfg: RunConfig) -> str:
        return self.input(cfg) if self.input is not None else self.reads[0].name

    def input_choices(self, cfg: RunConfig) -> tuple[str, ...]:
        """The datasets it may take its input from: its input dataset, and the other datasets it reads
        of a record kind related to that one's (sft_data: verified_episodes, else episodes)."""
        name = self.input_dataset(cfg)
        kind = next((d.kind for d in self.reads if d.name == name), None)
        related = tuple(d.name for d in self.reads if kind is not None and d.kind is not None and d.name != name
                        and (issubclass(d.kind, kind) or issubclass(kind, d.kind)))
        return (name, *related)

    def fed(self, cfg: RunConfig) -> list[str]:
        """The `fed_by` keys set in this config."""
        return [key for key in self.fed_by if self._setting(cfg, key)]

    @staticmethod
    def _setting(cfg: RunConfig, key: str) -> Any:
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        return value

    def shaping_settings(self, cfg: RunConfig) -> dict[str, Any]:
        """{dotted key: value} of `shaped_by` in this config."""
        out = {}
        for key in self.shaped_by:
            value = self._setting(cfg, key)
            out[key] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        return out

    def run(self, ctx: Any, runtime: Runtime) -> Summary:
        """Run it with `ctx`, its StageContext (`toolweave.stages.registry.context(cfg, stage)`)."""
        if self.worker is not None:
            return runtime.run_records(ctx.cfg, self)
        if self.driver is None:
            raise RuntimeError(f"stage {self.name}: its driver runs on Ray and is bound by training.drivers.bind "
                               f"(the runner does it: `toolweave {self.name.replace('_', '-')}`)")
        return self.driver(ctx, runtime)


class Runtime:
    """What the runner gives a stage: the run's engine (`base_url()`, started on first call; None with
    `llm.engine: endpoints`), how per-record stages run here (`run_records`) and, on a runner with a
    cluster to serve on, the model under test (`serve_model`). The runners subclass it through
    `toolweave.stages.lifecycle.RecordRunner`: Ray Data (`ray_jobs.pipeline.RayRuntime`) or asyncio in
    this process (`toolweave.stages.local.LocalRuntime`). This base runs driver stages only."""

    serves_models = False  # True: `serve_model` serves on this runner's cluster (Ray: a Serve LLM app)

    def base_url(self) -> str | None:
        return None

    def run_records(self, cfg: RunConfig, stage: Stage) -> Summary:
        raise NotImplementedError(f"{type(self).__name__} runs no per-record stage ({stage.name})")

    def serve_model(self, cfg: RunConfig, model_source: str, served_name: str,
                    max_model_len: int | None) -> AbstractContextManager[str]:
        """A context manager giving the base URL of the model under test served on this runner's
        cluster (`serves_models`); where it has none, evaluate serves it on a second embedded engine."""
        raise NotImplementedError(f"{type(self).__name__} serves no model")

    def clients(self, cfg: RunConfig) -> dict[str, ChatModel]:
        """A client per role; the engine starts on the first request (a rerun with nothing left starts none)."""
        return lazy_clients(cfg, self.base_url)
