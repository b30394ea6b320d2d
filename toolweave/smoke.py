"""`toolweave run CONFIG --smoke`: a shipped config scaled down to minutes on small machines, the one
transformation the `configs` tests run every file of configs/ through.

It KEEPS what a real run of the config depends on: `stages`, `preset` (already merged), every
parser, format, prompt and template setting, placement (`ray.actor_resources`, `ray.cluster`,
`train.resources_per_worker`, each deployment's `placement_resources`), storage (`run_dir`'s
scheme and place), the roles' endpoint and model names, the engine kind, and any explicit
`tool_call_parser` / `chat_template`.

It CHANGES exactly these keys (`CHANGED` below; tests/configs/test_smoke_transform.py holds every
shipped config to that list):
- model sources, to tiny stand-ins: each `llm.deployments[].model_source` and `llm.embedded.model`
  -> `smollm2` (the shipped SmolLM2-135M; its family then picks the parser of an unset
  `tool_call_parser`), `train.model` -> `tiny` with `train.tiny` = SMOKE_TINY (head_dim 64: vLLM's
  CPU attention serves it), `sft.tokenizer` -> null (the stand-in's own: a model path's tokenizer
  would not be the trained model's);
- counts, to small ones: `run.limit` 2, `run.batch_size` <= 2, `run.max_in_flight` <= 8,
  `ray.min_actors` / `max_actors` 1, `llm.max_tokens` <= 128, replicas 1 and `tensor_parallel_size`
  1, `toolsets.catalogue_limit` 1 / `max_attempts` 1 / `max_tokens` <= 256, `instructions.
  samples_per_mode` 1 / `per_sample` <= 2 / `per_tool` 1, `simulate.max_steps` <= 2 /
  `max_user_turns` <= 1, `solve.max_steps` <= 3 / `max_llm_calls` <= 6 / `max_tokens` <= 128,
  `verify.votes` 1, `sft.max_len` and `train.max_len` <= 1024 (`train.rope_original_max_len` scaled
  by the same factor: the RoPE stretch is kept), `train.num_workers` 1 / `num_cpus_per_worker` <=
  0.5 / `max_steps` 1 / `checkpoint_every` 1 / `micro_batch_size` 1 / `grad_accum` 1,
  `sweep.num_samples` 1 / `max_t` <= 4 / each `grid` its first value / swept `max_len`s <= 1024, `retriever.epochs` 1 /
  `batch_size` <= 8, `evaluate.votes` / `win_votes` 1 / `concurrency` <= 2;
- `run_dir` -> `<run_dir>-smoke` beside the real one (same storage; never the real run's ledger),
  unless the caller names one;
- with `cpu` (default: the run starts its own Ray and no GPU is visible): `gpus_per_worker` 0,
  `accelerator_type` null, replicas' `engine_kwargs` dtype float32 and eager without
  `gpu_memory_utilization`, `VLLM_CPU_KVCACHE_SPACE` 1 in their env; `train.use_gpu` / `bf16`
  false (`attn_implementation` is kept: a node without flash-attn falls back to sdpa, said once);
- with `llm_url` (a scripted OpenAI-compatible server, or a running engine, where the engine is not
  the point): `llm.engine` -> `endpoints` and each role's endpoint `base_url` -> that URL, `is_vllm`
  false (true where it stands in for the embedded vLLM engine), `api_key_env` null, `max_retries` <= 1 (model names kept; an embedded engine's roles get its
  `served_name`).
"""
from __future__ import annotations

import fnmatch
from typing import Any

from toolweave.config import RunConfig

SMOKE_TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 2}
SMOKE_MAX_LEN = 1024

# every dotted key the transformation may change (`#` = any list item); anything else is kept
CHANGED = (
    "run_dir", "run.limit", "run.batch_size", "run.max_in_flight", "ray.min_actors", "ray.max_actors",
    "llm.engine", "llm.max_tokens", "llm.embedded.model", "llm.endpoints.*",
    "llm.deployments.#.model_source", "llm.deployments.#.min_replicas", "llm.deployments.#.max_replicas",
    "llm.deployments.#.tensor_parallel_size", "llm.deployments.#.gpus_per_worker",
    "llm.deployments.#.accelerator_type", "llm.deployments.#.engine_kwargs.*", "llm.deployments.#.env_vars.*",
    "toolsets.catalogue_limit", "toolsets.max_attempts", "toolsets.max_tokens",
    "instructions.samples_per_mode", "instructions.per_sample", "instructions.per_tool",
    "simulate.max_steps", "simulate.max_user_turns", "solve.max_steps", "solve.max_llm_calls", "solve.max_tokens",
    "verify.votes", "sft.max_len", "sft.tokenizer",
    "train.model", "train.tiny.*", "train.max_len", "train.rope_original_max_len", "train.num_workers",
    "train.num_cpus_per_worker", "train.max_steps", "train.checkpoint_every", "train.micro_batch_size",
    "train.grad_accum", "train.use_gpu", "train.bf16",
    "sweep.num_samples", "sweep.max_t", "sweep.space.*",
    "retriever.epochs", "retriever.batch_size", "evaluate.votes", "evaluate.win_votes", "evaluate.concurrency",
)


def smoke_run_dir(run_dir: str) -> str:
    return f"{run_dir.rstrip('/')}-smoke"


def default_cpu(cfg: RunConfig) -> bool:
    """A run that starts its own Ray on a machine without a visible GPU runs its replicas and
    workers on the CPU; on a cluster the nodes' devices are kept."""
    from toolweave.checks import local_gpus, targets_local_ray
    return targets_local_ray(cfg) and local_gpus() == 0


def smoke_config(cfg: RunConfig, *, run_dir: str | None = None, llm_url: str | None = None,
                 cpu: bool | None = None) -> RunConfig:
    """`cfg` scaled down as the module docstring lists, validated again."""
    cpu = default_cpu(cfg) if cpu is None else cpu
    d = cfg.model_dump()
    d["run_dir"] = run_dir or smoke_run_dir(cfg.run_dir)
    run = d["run"]
    run.update(limit=2, batch_size=min(run["batch_size"], 2), max_in_flight=min(run["max_in_flight"], 8))
    d["ray"].update(min_actors=1, max_actors=1)
    _llm(d["llm"], llm_url, cpu)
    t = d["toolsets"]
    t.update(catalogue_limit=1, max_attempts=1, max_tokens=min(t["max_tokens"] or 256, 256))
    i = d["instructions"]
    i.update(samples_per_mode=1, per_sample=min(i["per_sample"], 2), per_tool=1)
    s = d["simulate"]
    s.update(max_steps=min(s["max_steps"], 2), max_user_turns=min(s["max_user_turns"], 1))
    s = d["solve"]
    s.update(max_steps=min(s["max_steps"], 3), max_llm_calls=min(s["max_llm_calls"], 6),
             max_tokens=min(s["max_tokens"], 128) if s["max_tokens"] else None)
    d["verify"]["votes"] = 1
    d["sft"].update(max_len=min(d["sft"]["max_len"], SMOKE_MAX_LEN),
                    tokenizer=d["sft"]["tokenizer"] if d["sft"]["tokenizer"] == "smollm2" else None)
    _train(d["train"], cpu)
    w = d["sweep"]
    w.update(num_samples=1, max_t=min(w["max_t"], 4), space={k: _swept(k, v) for k, v in w["space"].items()})
    r = d["retriever"]
    r.update(epochs=1, batch_size=min(r["batch_size"], 8))
    e = d["evaluate"]
    e.update(votes=1, win_votes=1 if e["win_votes"] else None, concurrency=min(e["concurrency"], 2))
    return RunConfig.model_validate(d)  # its placement: checked with the rest by smoke_checked (run_problems)


def _llm(llm: dict[str, Any], llm_url: str | None, cpu: bool) -> None:
    llm["max_tokens"] = min(llm["max_tokens"], 128)
    llm["embedded"]["model"] = "smollm2"
    for dep in llm["deployments"]:
        dep.update(model_source="smollm2", min_replicas=min(dep["min_replicas"], 1), max_replicas=1,
                   tensor_parallel_size=1)
        if cpu:
            kwargs = {k: v for k, v in dep["engine_kwargs"].items() if k != "gpu_memory_utilization"}
            dep.update(gpus_per_worker=0, accelerator_type=None,
                       engine_kwargs={**kwargs, "dtype": "float32", "enforce_eager": True},
                       env_vars={**dep["env_vars"], "VLLM_CPU_KVCACHE_SPACE": "1"})
    if llm_url:
        embedded = llm["engine"] == "embedded"  # its stand-in is a running vLLM (the session's SmolLM2 engine)
        default_model = llm["embedded"]["served_name"] if embedded else None
        endpoints = llm["endpoints"] or {"default": {}}
        llm["endpoints"] = {role: {**e, "base_url": llm_url, "is_vllm": embedded, "api_key_env": None,
                                   "max_retries": min(e.get("max_retries", 1), 1),
                                   **({"model": default_model} if default_model else {})}
                            for role, e in endpoints.items()}
        llm["engine"] = "endpoints"


def _swept(key: str, spec: Any) -> Any:
    """A sweep dimension scaled down: a grid its first value, swept lengths at most SMOKE_MAX_LEN."""
    if not isinstance(spec, dict):
        return spec
    if "grid" in spec:
        spec = {**spec, "grid": spec["grid"][:1]}
    if key.endswith("max_len"):
        spec = {k: list(dict.fromkeys(min(x, SMOKE_MAX_LEN) for x in v)) if k in ("grid", "choice") else v
                for k, v in spec.items()}
    return spec


def _train(t: dict[str, Any], cpu: bool) -> None:
    max_len = min(t["max_len"], SMOKE_MAX_LEN)
    rope = t["rope_original_max_len"]
    t.update(model="tiny", tiny=dict(SMOKE_TINY), max_len=max_len, num_workers=1,
             num_cpus_per_worker=min(t["num_cpus_per_worker"], 0.5), max_steps=1, checkpoint_every=1,
             micro_batch_size=1, grad_accum=1,
             rope_original_max_len=max(1, rope * max_len // t["max_len"]) if rope else None)
    if cpu:
        t.update(use_gpu=False, bf16=False)


def changed_keys(before: RunConfig, after: RunConfig) -> list[str]:
    """Dotted keys whose values differ (list items as `#`), for the check that nothing outside
    CHANGED moves."""
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and key.startswith("llm.deployments"):
            for x, y in zip(a, b):
                walk(x, y, f"{key}.#")
        elif a != b:
            out.append(key)

    walk(before.model_dump(), after.model_dump(), "")
    return out


def outside_changed(keys: list[str]) -> list[str]:
    """The keys of `keys` that CHANGED does not name."""
    return [k for k in keys if not any(k == p or fnmatch.fnmatchcase(k, p) for p in CHANGED)]


def smoke_checked(cfg: RunConfig, stages: list[str] | None = None, **options: Any) -> tuple[RunConfig | None, list[str]]:
    """The loaded `cfg` scaled down and checked as `toolweave run` checks a config (the local
    machine's problems are the smoke run's, not the full config's); (config or None, problem lines)."""
    from toolweave.checks import run_problems
    try:
        out = smoke_config(cfg, **options)
    except ValueError as e:  # a ConfigError of the scaled-down config
        return None, [f"--smoke: {e}"]
    return out, run_problems(out, stages)
