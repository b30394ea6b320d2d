"""Supervised fine-tuning on Ray Train: a DeepSpeed engine loop (ZeRO-2/3, offload, bf16, gradient
checkpointing and accumulation, cosine schedule with warmup) on `train.num_workers` workers.

Checkpoints are DeepSpeed checkpoints reported through `ray.train.report`: every worker saves its ZeRO
shard and Ray Train merges them into one checkpoint directory in storage (`<run_dir>/train/`). When a
worker dies, `FailureConfig(max_failures)` restarts the worker group and the loop restores the latest
checkpoint (`ray.train.get_checkpoint()`), resuming at its optimizer step; rerunning the same run name
resumes too. The final model is gathered to rank 0 and saved in Hugging Face format under
`<run_dir>/model/` (LoRA merged unless `train.merge_lora` is false), with the SFT tokenizer and its chat
template, loadable by `AutoModelForCausalLM.from_pretrained` and servable by vLLM. On a cluster, run_dir
must be shared storage (as Ray Train's storage path must be): a path every node mounts, or an object
store URI (`s3://...`, through `toolweave.io`'s pyarrow filesystem, endpoint and credentials from the
AWS_* environment). There rank 0 saves the model to a local temporary dir and uploads it.
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from toolweave import io, secrets
from toolweave.config import RunConfig
from toolweave.stage_context import StageContext
from training.ds_config import bf16_enabled, deepspeed_config, uses_deepspeed_optimizer
from training.model import build_model, check_tokenizer, count_params
from training.packing import collate
from training.sft_data import sft_tokenizer

log = logging.getLogger(__name__)

CKPT_TAG = "ds"
COLUMNS = ["input_ids", "labels", "position_ids"]

# dense bf16 peak TFLOP/s per device, for MFU
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def schedule(train, total_steps: int) -> tuple[int, int]:
    """(warmup steps, total steps) of the cosine schedule, in optimizer steps."""
    return max(0, round(train.warmup_ratio * total_steps)), total_steps


def plan_steps(train, n_rows: int, world_size: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps). Every worker runs the same number of steps
    (collectives must match), so a last partial batch is dropped."""
    per_step = world_size * train.micro_batch_size * train.grad_accum
    steps_per_epoch = n_rows // per_step
    if steps_per_epoch == 0:
        raise ValueError(f"{n_rows} SFT rows are fewer than one optimizer step needs ({world_size} workers x "
                         f"micro batch {train.micro_batch_size} x grad accum {train.grad_accum})")
    total = max(1, math.ceil(train.epochs * steps_per_epoch))
    return steps_per_epoch, min(total, train.max_steps) if train.max_steps else total


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v * 1e12 for k, v in PEAK_TFLOPS.items() if k in name), None)


def _micro_batches(shard, micro: int, pad_id: int):
    buf = []
    for row in shard.iter_rows():
        buf.append(row)
        if len(buf) == micro:
            yield collate(buf, pad_id), sum(len(r["input_ids"]) for r in buf)
            buf = []


@dataclass
class WorkerRun:
    """What one Ray Train worker's loop needs, made by `_setup`."""

    cfg: RunConfig
    engine: Any  # the DeepSpeed engine
    tokenizer: Any
    rank: int
    world: int
    device: Any
    steps_per_epoch: int
    total_steps: int
    n_params: int
    n_trainable: int
    peak_flops: float | None
    validation: list[dict] | None = None  # the held-out rows, every one on every worker (loaded once)


@dataclass
class Window:
    """Counters since the last logged step (summed over the workers when logged)."""

    loss: float = 0.0
    n: int = 0
    tokens: int = 0  # real tokens
    computed: int = 0  # tokens computed, padding included
    t: float = field(default_factory=time.perf_counter)

    def add(self, loss: float, real: int, computed: int) -> None:
        self.loss += loss
        self.n += 1
        self.tokens += real
        self.computed += computed


def worker_config(data: dict[str, Any]) -> RunConfig:
    """The run config in a Ray Train or Tune worker, its secrets registered in this process's registry
    (each process has its own: a key quoted by an error or a log line here is redacted too)."""
    cfg = RunConfig.model_validate(data)
    secrets.register_config(cfg)
    return cfg


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Set up, resume from Ray Train's checkpoint, train to `total_steps`, save the model."""
    run = _setup(config)
    step = _resume(run)
    metrics = _train(run, config, step)
    if config["save_model"]:
        save_hf_model(run.engine, run.cfg, run.tokenizer, config["model_dir"], run.rank,
                      done={"sft_rows": config["n_rows"], "metrics": metrics})


def _setup(config: dict[str, Any]) -> WorkerRun:
    """The model and its DeepSpeed engine (optimizer, cosine schedule) on this worker."""
    import deepspeed
    import ray.train
    from transformers import get_cosine_schedule_with_warmup

    cfg = worker_config(config["cfg"])
    train = cfg.train
    t0 = time.perf_counter()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tokenizer = sft_tokenizer(cfg.sft)
    check_tokenizer(train, tokenizer)
    steps_per_epoch, total_steps = plan_steps(train, config["n_rows"], world)
    ds_cfg = deepspeed_config(train, world)

    # DeepSpeed's comm layer over Ray Train's torch process group, before zero.Init reads the world
    # size (uninitialised it says 1, and the batch-size check fails for a pretrained model)
    from deepspeed.accelerator import get_accelerator
    deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())
    hf_ds = None
    if train.zero_stage == 3 and train.model != "tiny":
        # makes from_pretrained build the model already partitioned (deepspeed.zero.Init): 7B/13B never whole on one rank
        from transformers.integrations import HfDeepSpeedConfig
        hf_ds = HfDeepSpeedConfig(ds_cfg)
    model = build_model(train, len(tokenizer), seed=cfg.seed)
    n_params, n_trainable = count_params(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = None if uses_deepspeed_optimizer(train) else torch.optim.AdamW(
        params, lr=train.lr, weight_decay=train.weight_decay)
    warmup, total = schedule(train, total_steps)
    engine, optimizer, _, _ = deepspeed.initialize(
        model=model, model_parameters=params, optimizer=optimizer, config=ds_cfg,
        lr_scheduler=(lambda opt: get_cosine_schedule_with_warmup(opt, warmup, total)))
    del hf_ds
    log.info("rank %d: model and DeepSpeed engine ready in %.1f s", rank, time.perf_counter() - t0)
    return WorkerRun(cfg, engine, tokenizer, rank, world, ray.train.torch.get_device(), steps_per_epoch,
                     total_steps, n_params, n_trainable,
                     train.peak_tflops * 1e12 if train.peak_tflops else peak_flops())


def _resume(run: WorkerRun) -> int:
    """The optimizer step of Ray Train's latest checkpoint (0 without one), restored into the engine."""
    import ray.train
    ckpt = ray.train.get_checkpoint()
    if not ckpt:
        return 0
    with ckpt.as_directory() as d:
        _, client = run.engine.load_checkpoint(d, tag=CKPT_TAG)
    log.info("rank %d resumed from step %d", run.rank, int(client["step"]))
    return int(client["step"])


def _train(run: WorkerRun, config: dict[str, Any], step: int) -> dict[str, Any]:
    """Optimizer steps from `step` to the end, epoch after epoch over this worker's shard; returns
    the last logged metrics."""
    import ray.train
    train, engine = run.cfg.train, run.engine
    shard = ray.train.get_dataset_shard("train")
    resumed_from = step
    window = Window()
    micro_per_epoch = run.steps_per_epoch * train.grad_accum
    metrics: dict[str, Any] = {}
    while step < run.total_steps:
        skip = (step % run.steps_per_epoch) * train.grad_accum  # micro batches this epoch already trained
        for i, (batch, real) in enumerate(_micro_batches(shard, train.micro_batch_size, run.tokenizer.pad_token_id)):
            if i < skip:
                continue
            if i >= micro_per_epoch:
                break
            batch = {k: v.to(run.device) for k, v in batch.items()}
            # no attention mask and no KV cache: restarting position ids give the packed block mask
            loss = engine(**batch, use_cache=False).loss
            engine.backward(loss)
            engine.step()
            window.add(float(loss.detach()), real, batch["input_ids"].numel())
            if (i + 1) % train.grad_accum:
                continue
            step += 1
            last = step >= run.total_steps
            if step % train.log_every and step % train.checkpoint_every and not last:
                continue
            metrics = _step_metrics(run, window, step, resumed_from)
            if config.get("validate"):
                metrics["val_loss"] = _validation_loss(run)
            window = Window()
            _report(run, config, metrics, checkpoint=step % train.checkpoint_every == 0 or last)
            if last:
                break
    return metrics


def _step_metrics(run: WorkerRun, w: Window, step: int, resumed_from: int) -> dict[str, Any]:
    """Loss, lr, tokens/s, packing efficiency and MFU since the last logged step, over all workers."""
    import torch.distributed as dist
    train = run.cfg.train
    stats = torch.tensor([w.loss, w.n, w.tokens, w.computed], dtype=torch.float64)
    dist.all_reduce(stats)
    tok_s = stats[2].item() / (time.perf_counter() - w.t)
    metrics = {"step": step, "epoch": step / run.steps_per_epoch, "loss": stats[0].item() / stats[1].item(),
               "lr": run.engine.get_lr()[0], "tokens_per_s": tok_s,
               "packing_efficiency": stats[2].item() / stats[3].item(),
               "resumed_from": resumed_from, "total_steps": run.total_steps,
               "params": run.n_params, "trainable_params": run.n_trainable}
    if run.peak_flops:
        cfgm = run.engine.module.config
        attn_flops = 12 * cfgm.num_hidden_layers * cfgm.hidden_size  # per token per context token
        seq = stats[3].item() / max(stats[1].item(), 1) / train.micro_batch_size
        metrics["mfu"] = tok_s * (6 * run.n_params + attn_flops * seq) / (run.peak_flops * run.world)
    return metrics


def _validation_loss(run: WorkerRun) -> float:
    """Mean loss per predicted token over the held-out rows. Every worker evaluates all of them (the
    validation dataset is not split), so under ZeRO-3 all ranks run the same forwards and gathers."""
    import ray.train
    if run.validation is None:
        run.validation = list(ray.train.get_dataset_shard("validation").iter_rows())
    if not run.validation:
        raise ValueError("the validation dataset is empty")
    micro, total, n = run.cfg.train.micro_batch_size, 0.0, 0
    run.engine.eval()
    with torch.no_grad():
        for i in range(0, len(run.validation), micro):
            batch = collate(run.validation[i:i + micro], run.tokenizer.pad_token_id)
            batch = {k: v.to(run.device) for k, v in batch.items()}
            predicted = int((batch["labels"][:, 1:] != -100).sum())  # the model's loss is a mean over these
            total += float(run.engine(**batch, use_cache=False).loss) * predicted
            n += predicted
    run.engine.train()
    return total / max(n, 1)


def _report(run: WorkerRun, config: dict[str, Any], metrics: dict[str, Any], checkpoint: bool) -> None:
    """Metrics to `metrics.jsonl` (rank 0) and to Ray Train, with a checkpoint of every worker's
    shard when `checkpoint`; the fault drill fails once after its step's checkpoint."""
    import ray.train
    if run.rank == 0:  # the whole history (Ray keeps only checkpointed reports' metrics)
        _append_line(config["metrics_log"], json.dumps(metrics))
    if not checkpoint:
        ray.train.report(metrics)
        return
    step = metrics["step"]
    with tempfile.TemporaryDirectory() as tmp:
        run.engine.save_checkpoint(tmp, tag=CKPT_TAG, client_state={"step": step})
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    if run.cfg.train.fail_at_step == step and run.rank == 0 and _first_failure(config["fault_marker"]):
        raise RuntimeError(f"injected failure after the checkpoint of step {step} (train.fail_at_step)")


def _append_line(path: str, line: str) -> None:
    if not io.is_remote(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(line + "\n")
        return
    # an object has no append: rewritten whole (one line per logged step, a small file)
    io.write_text(path, (io.read_text(path) or "") + line + "\n")


def _first_failure(marker: str) -> bool:
    if io.exists(marker):
        return False
    io.write_text(marker, "injected once\n")
    return True


DONE_FILE = "toolweave_train.json"  # written last: its presence means the model dir is complete
VERSION_FILE = "hash"  # in an object store: Serve LLM's bucket mirror names its local copy after it


def upload_model(local: Path, out: str | Path) -> None:
    """A saved model dir into an object store, with a new `hash` file: each node's Serve LLM download
    of this version lands in a snapshot dir of its own (without one every version shares snapshot
    000..., and a replica could load a retrain's files mixed with the last one's)."""
    (local / VERSION_FILE).write_text(uuid.uuid4().hex)
    io.upload_dir(local, out, last=DONE_FILE)


def save_hf_model(engine, cfg: RunConfig, tokenizer, out: str | Path, rank: int, done: dict | None = None) -> None:
    """Gather the trained weights (a collective under ZeRO-3) and save a plain HF model on rank 0,
    into `out` (a local dir, or an object-store URI: saved locally, then uploaded)."""
    train = cfg.train
    if train.zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()  # full dict on rank 0, None elsewhere
    else:
        state = engine.module.state_dict()
    if rank != 0:
        return
    dtype = torch.bfloat16 if bf16_enabled(train) else torch.float32
    fresh = build_model(train.model_copy(update={"gradient_checkpointing": False}), len(tokenizer), dtype=dtype)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"gathered weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if train.lora is not None and train.merge_lora:
        fresh = fresh.merge_and_unload()
    if io.is_remote(out):
        io.delete(io.join(out, DONE_FILE))  # the model there is no longer complete
        with tempfile.TemporaryDirectory(prefix="toolweave-model-") as local:
            _write_hf_model(fresh, cfg, tokenizer, Path(local), done)
            upload_model(Path(local), out)
        return
    _write_hf_model(fresh, cfg, tokenizer, Path(out), done)


def _write_hf_model(fresh, cfg: RunConfig, tokenizer, out: Path, done: dict | None) -> None:
    train = cfg.train
    out.mkdir(parents=True, exist_ok=True)
    fresh.config.use_cache = True
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / DONE_FILE).write_text(json.dumps(
        {"base": train.model, "lora": train.lora, "merged": train.merge_lora, "sft_format": cfg.sft.format,
         "max_len": train.max_len, "train": train.model_dump(mode="json"), **(done or {})}, indent=2))


def finished_model(cfg: RunConfig, model_dir: str | Path, n_rows: int) -> dict | None:
    """The record of a model this same training (train section, SFT rows) already saved, else None."""
    try:
        done = json.loads(io.read_text(io.join(model_dir, DONE_FILE)) or "")
    except (OSError, ValueError):
        return None
    same = done.get("train") == cfg.train.model_dump(mode="json") and done.get("sft_rows") == n_rows
    return done if same else None


# --- driver ------------------------------------------------------------------------------------

def count_rows(data: str | Path) -> int:
    """Rows of a Parquet dataset from the file footers (no Ray Data job for a count)."""
    return sum(io.parquet_file(part).metadata.num_rows for part in io.part_files(data))


def _absolute(path: str | Path) -> str:
    """The path as every worker can use it: absolute locally (workers do not run in the driver's
    directory), a URI as it is."""
    return io.location(path) if io.is_remote(path) else str(Path(path).expanduser().resolve())


def _read_sft(path: str, **kwargs):
    """A Ray Data read of SFT rows, through the filesystem `toolweave.io` uses for the path (an
    object store's endpoint as the run configures it)."""
    import ray.data
    fs, inner = io.filesystem(path)
    return ray.data.read_parquet(inner, filesystem=fs, **kwargs)


def fit(cfg: RunConfig, *, storage: str | Path, name: str, data: str | Path, model_dir: str | Path | None,
        callbacks: list | None = None, validation: str | Path | None = None):
    """Run one TorchTrainer; returns Ray Train's Result. With `validation` (SFT rows held out of
    `data`), every logged step also reports `val_loss` on them."""
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    train = cfg.train
    storage, data = _absolute(storage), _absolute(data)
    model_dir = _absolute(model_dir) if model_dir is not None else None
    cfg = cfg.model_copy(update={"run_dir": _absolute(cfg.run_dir)})
    ray.data.DataContext.get_current().enable_progress_bars = cfg.run.show_progress
    n_rows = count_rows(data)
    if n_rows == 0:
        raise ValueError(f"no SFT rows in {data}: run the sft_data stage first")
    plan_steps(train, n_rows, train.num_workers)  # too few rows: say so here, not from every worker
    datasets = {"train": _read_sft(data, columns=COLUMNS)}
    if validation is not None:
        datasets["validation"] = _read_sft(_absolute(validation), columns=COLUMNS)
    resources = {"CPU": train.num_cpus_per_worker, **train.resources_per_worker}
    # checkpoints through the same filesystem as the run's datasets (an object store's endpoint)
    storage_fs, storage_inner = io.filesystem(storage) if io.is_remote(storage) else (None, storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg.model_dump(mode="json"), "n_rows": n_rows,
                           "model_dir": str(model_dir or ""), "save_model": model_dir is not None,
                           "validate": validation is not None,
                           "fault_marker": io.join(storage, name, ".injected_failure"),
                           "metrics_log": io.join(storage, name, "metrics.jsonl")},
        scaling_config=ray.train.ScalingConfig(num_workers=train.num_workers, use_gpu=train.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_inner, storage_filesystem=storage_fs,
            failure_config=ray.train.FailureConfig(max_failures=train.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks or []),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    return trainer.fit()


def run(ctx: StageContext) -> dict:
    """SFT rows (its input, or `train.data`) → checkpoints (its first output), final model (its second)."""
    from training.ray_init import init_ray
    cfg, (sft,), (checkpoints, model) = ctx.cfg, ctx.inputs.values(), ctx.outputs.values()
    init_ray(cfg)
    data = io.location(cfg.train.data or sft.path)
    model_dir = io.location(model.path) if cfg.train.save_model else None
    if model_dir is not None and (done := finished_model(cfg, model_dir, count_rows(data))):
        # a rerun of a finished chain: neither train again nor rewrite the model
        return {**done.get("metrics", {}), "model_dir": model_dir, "skipped": "model already trained"}
    result = fit(cfg, storage=checkpoints.path, name=f"{cfg.name}-sft", data=data, model_dir=model_dir)
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    summary = {k: v for k, v in (result.metrics or {}).items()}
    checkpoint = result.checkpoint.path if result.checkpoint else None
    storage = io.location(checkpoints.path)
    if checkpoint and io.is_remote(storage):  # a path inside the store's filesystem: as a URI
        checkpoint = f"{storage.split('://', 1)[0]}://{checkpoint}"
    summary.update(checkpoint=checkpoint, model_dir=model_dir)
    return summary
