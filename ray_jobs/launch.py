"""Runs stages: one (`python -m ray_jobs.<stage> --config FILE k=v ...`, `toolweave <stage>`) or
the chain a config lists (`toolweave run CONFIG`). Local and submitted jobs run the same code:
`ray.init` starts a local instance, or joins the cluster `ray job submit` put us on.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from toolweave.config import STAGES, RunConfig, load_config
from toolweave.stages.plan import RECORD_STAGES

log = logging.getLogger("toolweave.jobs")

# driver-level stages: the one core function each calls, "module:function" (cfg[, clients]) -> dict
DRIVER_STAGES: dict[str, str] = {
    "sft_data": "training.sft_data:run",
    "train": "training.trainer:run",
    "sweep": "training.sweep:run",
    "retriever": "training.retriever:run",
    "evaluate": "toolweave.evaluation:run",
}
NEEDS_LLM = {"build_toolset", "instructions", "simulate", "solve", "evaluate"}


def _driver_function(stage: str) -> Callable[..., dict]:
    target = DRIVER_STAGES[stage]
    mod, _, fn = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"stage {stage}: its core function {target} is not available ({e})") from e


BaseURL = str | Callable[[], str | None] | None  # a URL, or a function that starts the engine and gives it


def run_stage(cfg: RunConfig, stage: str, base_url: BaseURL = None) -> dict[str, Any]:
    """One stage, Ray already initialised. `base_url`: the engine's URL, or a function giving it that
    is called only when the stage has LLM work left (`runtime.LazyEngine`)."""
    if stage in RECORD_STAGES:
        from ray_jobs.pipeline import run_record_stage
        return run_record_stage(cfg, stage, base_url)
    extra: dict[str, Any] = {}
    if stage == "evaluate" and cfg.evaluate.solve_with:
        # the model under test first solves the test splits (serve -> solve), then is judged
        from ray_jobs.pipeline import solve_for_evaluation
        from toolweave.stages.eval_solve import judging_config
        extra["solve"] = solve_for_evaluation(cfg, base_url)
        cfg = judging_config(cfg)
    if stage in DRIVER_STAGES:
        fn = _driver_function(stage)
        if "clients" in inspect.signature(fn).parameters:
            from toolweave.stages.clients import build_clients, lazy_clients
            clients = lazy_clients(cfg, base_url) if callable(base_url) else build_clients(cfg, base_url)
            return {**fn(cfg, clients=clients), **extra}
        return {**fn(cfg), **extra}
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def run_stages(cfg: RunConfig, stages: list[str]) -> dict[str, Any]:
    """Stages in order, sharing one Ray session and (when any needs it) one engine start."""
    from ray_jobs.runtime import LazyEngine, ray_session
    unknown = [s for s in stages if s not in STAGES or s == "serve"]
    if unknown:
        raise ValueError(f"cannot run {unknown} in a chain; stages: {', '.join(s for s in STAGES if s != 'serve')}")
    results: dict[str, Any] = {}
    with ray_session(cfg):
        # started by the first stage with LLM work left, shared by the rest of the chain
        engine = LazyEngine(cfg) if NEEDS_LLM & set(stages) else None
        try:
            for stage in stages:
                t0 = time.monotonic()
                results[stage] = run_stage(cfg, stage, engine)
                log.warning("stage %s done in %.1fs: %s", stage, time.monotonic() - t0,
                            json.dumps(results[stage], default=str)[:500])
        finally:
            if engine is not None:
                engine.close()
    cfg.path().mkdir(parents=True, exist_ok=True)
    cfg.path("run_summary.json").write_text(json.dumps(results, indent=2, default=str))
    return results


class _no_engine:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def serve_forever(cfg: RunConfig) -> int:
    """`toolweave serve`: start the configured engine, print its base URL, wait for Ctrl-C."""
    from ray_jobs.runtime import llm_engine, ray_session
    if cfg.llm.engine != "embedded":
        print(json.dumps({role: e.base_url for role, e in cfg.llm.endpoints.items()}))
        return 0
    with ray_session(cfg) if cfg.llm.embedded.backend == "serve" else _no_engine():
        with llm_engine(cfg) as base_url:
            print(base_url, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def run_from_cli(stage: str, config: str | None, overrides: list[str]) -> int:
    """`toolweave run CONFIG` (the chain `cfg.stages`) or `toolweave <stage> CONFIG`."""
    try:
        cfg = load_config(config, overrides)
    except Exception as e:  # noqa: BLE001 - a bad config is the user's to fix: say what, no trace
        print(f"toolweave: config {config!r}: {e}", file=sys.stderr)
        return 2
    if stage == "serve":
        return serve_forever(cfg)
    stages = cfg.stages if stage == "run" else [stage]
    if not stages:
        print(f"toolweave: config {config!r} lists no stages (set `stages:`)", file=sys.stderr)
        return 2
    try:
        results = run_stages(cfg, stages)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"toolweave {stage}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2, default=str))
    return 0


def main(stage: str, argv: list[str] | None = None) -> int:
    """Entry of `python -m ray_jobs.<stage> --config FILE [key=value ...]`."""
    p = argparse.ArgumentParser(prog=f"python -m ray_jobs.{stage}")
    p.add_argument("--config", help="YAML run config (configs/...)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. ray.max_actors=4")
    args = p.parse_args(argv)
    return run_from_cli(stage, args.config, args.overrides)
