"""Hyperparameter sweeps with Ray Tune over the SFT trainer (learning rate, epochs, LoRA rank, packing
length, ...), with ASHA early stopping.

Ray Train V2 pattern: each Tune trial is a small driver function that runs its own `TorchTrainer`; the
`TuneReportCallback` forwards the workers' `ray.train.report` metrics (and checkpoint paths) to Tune, so
ASHA can stop a poor trial early. A trial that sweeps `sft.max_len` re-packs the SFT rows at that length
into its own directory (no re-tokenizing). Trials are scored on a held-out validation split of the SFT
examples (`sweep.validation_fraction`, by episode, the same for every trial; metric `val_loss`), not on
their training loss. The trials' workers ask for `train.resources_per_worker` (`{trainer: 1}` on a
cluster: they run on `trainer` nodes). Writes `sweep/results.csv`, `sweep/results.json` and returns
the best trial's parameters, metrics and checkpoint.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave.stage_context import StageContext
from toolweave.io import iter_rows, write_part
from toolweave.schemas import SFTExample
from training.model import LORA_DEFAULTS
from training.packing import pack, to_record, unpack

log = logging.getLogger(__name__)

SWEEPABLE = ("train.", "sft.max_len")


def search_space(space: dict[str, Any]) -> dict[str, Any]:
    """Config form ({grid|choice|loguniform|uniform: ...}) → Tune search space objects."""
    from ray import tune

    kinds = {"grid": tune.grid_search, "choice": tune.choice,
             "loguniform": lambda v: tune.loguniform(*v), "uniform": lambda v: tune.uniform(*v)}
    out = {}
    for key, spec in space.items():
        if not key.startswith(SWEEPABLE):
            raise ValueError(f"sweep.space key {key!r}: only train.* and sft.max_len can be swept")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in kinds:
            raise ValueError(f"sweep.space[{key!r}] must be one of {{grid|choice|loguniform|uniform: ...}}, got {spec!r}")
        kind, values = next(iter(spec.items()))
        out[key] = kinds[kind](values)
    return out


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> RunConfig:
    """The trial's config: the base config with dotted overrides (`train.lora.r` switches LoRA on)."""
    data = copy.deepcopy(base)
    for key, value in params.items():
        parts = key.split(".")
        if parts[:2] == ["train", "lora"] and data["train"].get("lora") is None:
            data["train"]["lora"] = dict(LORA_DEFAULTS)
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    cfg = RunConfig.model_validate(data)
    if "sft.max_len" in params:  # the packing length is the training length
        cfg.train.max_len = cfg.sft.max_len
    return cfg


def repack(src: Path, dst: Path, max_len: int, fmt: str) -> int:
    """Re-pack SFT rows at another length; examples longer than it are left out (counted in the log)."""
    return _write_packed([e for row in iter_rows(src) for e in unpack(row)], dst, max_len, fmt)


def _write_packed(examples: list, dst: Path, max_len: int, fmt: str) -> int:
    fit = [e for e in examples if len(e) <= max_len]
    if len(fit) < len(examples):
        log.warning("packing to %d tokens leaves out %d longer examples", max_len, len(examples) - len(fit))
    write_part([to_record(r, fmt) for r in pack(fit, max_len)], dst, SFTExample, name="0")
    return len(fit)


def split_validation(src: Path, out: Path, fraction: float, max_len: int, fmt: str) -> tuple[Path, Path]:
    """Hold out `fraction` of the SFT examples (at least one, chosen by a hash of the episode id, so
    the split is stable across runs and trials) as `out/validation`; the rest, re-packed, as `out/train`."""
    examples = [e for row in iter_rows(src) for e in unpack(row)]
    if len(examples) < 2:
        raise ValueError(f"{len(examples)} SFT examples in {src}: a sweep needs at least 2 (train + validation)")
    ranked = sorted(examples, key=lambda e: hashlib.sha1(e.episode_id.encode()).hexdigest())
    n_val = min(len(ranked) - 1, max(1, round(fraction * len(ranked))))
    _write_packed(ranked[:n_val], out / "validation", max_len, fmt)
    _write_packed(ranked[n_val:], out / "train", max_len, fmt)
    return out / "train", out / "validation"


def trial_driver(config: dict[str, Any]) -> None:
    """One Tune trial: runs its own TorchTrainer and reports through TuneReportCallback."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from training.trainer import fit, worker_config

    base = worker_config(config["base"])  # a trial's own process: its secrets registered here
    params = {k: v for k, v in config.items() if k not in ("base", "out")}
    cfg = apply_params(config["base"], params)
    trial = tune.get_context().get_trial_name()
    storage = Path(config["out"])  # the sweep stage's output, resolved by its driver
    data, validation = storage / "data" / "train", storage / "data" / "validation"
    if "sft.max_len" in params:
        packed = storage / "data" / f"sft_len{cfg.sft.max_len}_{trial}"
        repack(data, packed / "train", cfg.sft.max_len, base.sft.format)
        if not repack(validation, packed / "validation", cfg.sft.max_len, base.sft.format):
            raise ValueError(f"trial {trial}: no validation example fits sft.max_len {cfg.sft.max_len}")
        data, validation = packed / "train", packed / "validation"
    result = fit(cfg, storage=storage / "trials", name=trial, data=data, model_dir=None,
                 callbacks=[TuneReportCallback()], validation=validation)
    if result.error:
        raise result.error


def run(ctx: StageContext) -> dict:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from training.ray_init import init_ray

    cfg, (sft_in,), (sweep_out,) = ctx.cfg, ctx.inputs.values(), ctx.outputs.values()
    init_ray(cfg)
    sw = cfg.sweep
    out = sweep_out.path
    out.mkdir(parents=True, exist_ok=True)
    sft = Path(cfg.train.data) if cfg.train.data else sft_in.path
    split_validation(sft, out / "data", sw.validation_fraction, cfg.sft.max_len, cfg.sft.format)
    tuner = tune.Tuner(
        tune.with_resources(trial_driver, {"CPU": sw.trial_cpus}),
        param_space={"base": cfg.model_dump(mode="json"), "out": str(out), **search_space(sw.space)},
        tune_config=tune.TuneConfig(
            metric=sw.metric, mode=sw.mode, num_samples=sw.num_samples, max_concurrent_trials=sw.max_concurrent,
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=sw.max_t, grace_period=sw.grace_period,
                                    reduction_factor=sw.reduction_factor)),
        run_config=tune.RunConfig(name=f"{cfg.name}-sweep", storage_path=str((out / "tune").resolve())),
    )
    grid = tuner.fit()
    rows = []
    for r in grid:
        params = {k: v for k, v in (r.config or {}).items() if k not in ("base", "out")}
        m = r.metrics or {}
        rows.append({**params, sw.metric: m.get(sw.metric), "loss": m.get("loss"), "step": m.get("step"),
                     "total_steps": m.get("total_steps"), "iterations": m.get("training_iteration"),
                     "checkpoint": m.get("checkpoint_path"), "error": str(r.error) if r.error else None,
                     # ASHA stopped it: it ended without an error before its last step
                     "stopped_early": not r.error and m.get("step") is not None and m["step"] < m["total_steps"]})
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    ok = [r for r in rows if r[sw.metric] is not None and not r["error"]]
    if not ok:
        raise RuntimeError(f"no sweep trial finished: {[r['error'] for r in rows]}")
    best = (min if sw.mode == "min" else max)(ok, key=lambda r: r[sw.metric])
    summary = {"trials": len(rows), "finished": len(ok), "stopped_early": sum(bool(r["stopped_early"]) for r in rows),
               "best": best, "results": str(out / "results.csv")}
    (out / "best.json").write_text(json.dumps(best, indent=2, default=str))
    return summary
