"""Stage evaluate: eval_episodes/ (else episodes/) -> eval/, report/ (`toolweave.evaluation.run`).

With `evaluate.solve_with` the model under test first solves the test splits (DESIGN: checkpoint ->
serve -> endpoint -> solve(test split) -> episodes): a second embedded engine serves it, and the
solve stage runs with three changes (`EVAL_SOLVE`): the assistant role talks to the model under
test, only the instructions of `evaluate.splits` are solved, and the episodes go to
`eval_episodes/` with their own ledger (resume and exactly-once commits as for `episodes/`, never
mixed with it). The other roles (executor, user) stay on the run's own engine. Then exactly those
episodes are judged.

`evaluate.tools` lists the tool settings each test query is solved with (ToolBench's "oracle" rows:
`given`, its own tools; "retriever" rows: `retrieved`, the trained retriever's top-k): one episode
per setting (`extra.tools`; a retrieved one's id ends in `--retrieved`), each setting with its own
ledger (`eval_solve`, `eval_solve_retrieved`: resume per setting), and the report's rows side by side.

With `llm.engine: serve` on the Ray runner, the model under test is not a second engine on the
driver (the CPU-only head of a cluster) but its own Serve LLM app on the `vllm` nodes
(`runtime.serve_model`, a runner that `serves_models`: `actors.serve.model_under_test_settings`, shaped like the run's first
deployment), removed when the test splits are solved; the judge and the simulated tools stay on
the run's app. A trained model in an object store (an `s3://` run dir) is handed to Serve as its
URI (`served_model_source`): each replica's node downloads it (Ray Serve LLM's bucket mirror), into
a cache dir named by the deployment's model id, which therefore names the model's version
(`served_model_id`: `trained-<version>`; the summary's `served_name`); only the embedded engine on
this machine needs the local copy (`local_trained_model`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolweave import io
from toolweave.config import ROLES, EmbeddedEngineConfig, RunConfig
from toolweave.llm.types import ChatModel
from toolweave.schemas import Episode, EvalResult, Instruction, Reject, Tool
from toolweave.stages import solve
from toolweave.stages.clients import resolve_endpoints
from toolweave.stage_context import StageContext
from toolweave.stages.declaration import Dataset, Runtime, Stage, Summary
from toolweave.stages.lifecycle import stage_io
from toolweave.stages.scan import scan_inputs

EVAL_EPISODES = "eval_episodes"
MODEL_FILE = "eval_episodes_model.json"  # beside eval_episodes/ (a dataset dir holds Parquet only)
# in a model dir in an object store: its upload's version (training.trainer.upload_model writes it);
# Serve LLM's bucket mirror names a node's snapshot of the model after its content
MIRROR_VERSION_FILE = "hash"
# solve, by the model under test, into eval_episodes/ (progress and `eval_solve_summary.json`)
EVAL_SOLVE = dataclasses.replace(solve.STAGE, name="eval_solve", writes=(Dataset(EVAL_EPISODES, Episode),))
# the same with the retrieved tools: the same dataset (other episode ids), its own ledger
EVAL_SOLVE_RETRIEVED = dataclasses.replace(EVAL_SOLVE, name="eval_solve_retrieved")
EVAL_SOLVES = {"given": EVAL_SOLVE, "retrieved": EVAL_SOLVE_RETRIEVED}


def tool_settings(cfg: RunConfig) -> list[str]:
    """The tool settings the model under test solves with: `evaluate.tools`, else `solve.tools`'s one."""
    return list(dict.fromkeys(cfg.evaluate.tools)) or [cfg.solve.tools]


def _no_retriever(cfg: RunConfig) -> str:
    return (f"evaluate.tools has 'retrieved' but no trained retriever in {cfg.path('retriever')}: "
            "run the retriever stage before evaluate, or set evaluate.tools: [given]")


def check_retriever(cfg: RunConfig, settings: list[str]) -> None:
    """Before a model is served: the retrieved setting needs the retriever stage's output."""
    if "retrieved" in settings and not io.exists(cfg.path("retriever", "report.json")):
        raise ValueError(_no_retriever(cfg))


def chain_problem(cfg: RunConfig) -> str | None:
    """Said before a chain runs: its evaluate solves with retrieved tools (the toolbench preset's
    [given, retrieved]) but no earlier stage trains the retriever and the run dir has none."""
    stages = cfg.stages
    if "evaluate" not in stages or not cfg.evaluate.solve_with or "retrieved" not in tool_settings(cfg):
        return None
    if "retriever" in stages[:stages.index("evaluate")] or io.exists(cfg.path("retriever", "report.json")):
        return None
    return _no_retriever(cfg)


def model_source(cfg: RunConfig) -> str:
    """`evaluate.solve_with` as something vLLM loads: "trained" is this run's `model/` dir."""
    src = cfg.evaluate.solve_with
    if not src:
        raise ValueError("evaluate.solve_with is not set: there is no model to solve the test splits with")
    if src != "trained":
        local = Path(src).expanduser()
        return str(local) if local.exists() else src  # else a hub id, resolved by vLLM
    model_dir = local_trained_model(cfg)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"evaluate.solve_with=trained: no trained model at {model_dir} (config.json "
                                "missing); run the train stage first (with train.save_model: true)")
    return str(model_dir)


def stored_model(cfg: RunConfig) -> str | None:
    """`evaluate.solve_with: trained` of a run dir in an object store: `<run_dir>/model`'s URI; None
    otherwise (a local run dir, another model)."""
    if cfg.evaluate.solve_with == "trained" and io.is_remote(cfg.path("model")):
        return io.location(cfg.path("model"))
    return None


def stored_model_files(cfg: RunConfig) -> dict[str, tuple[int, float | None]]:
    """The files of `<run_dir>/model` in the object store; FileNotFoundError when it holds no model."""
    model_dir = cfg.path("model")
    files = io.files_under(model_dir)
    if "config.json" not in files:
        raise FileNotFoundError(f"evaluate.solve_with=trained: no trained model at {io.location(model_dir)} "
                                "(config.json missing); run the train stage first (with train.save_model: true)")
    return files


def served_model_source(cfg: RunConfig) -> str:
    """`evaluate.solve_with` as a Serve LLM replica loads it: a trained model in an object store stays
    its URI (each replica's node downloads it from the bucket; a copy on this driver's disk is of no
    use to a replica on another node), anything else as `model_source`."""
    uri = stored_model(cfg)
    if uri is None:
        return model_source(cfg)
    stored_model_files(cfg)  # there is a model to serve
    return uri


def local_trained_model(cfg: RunConfig) -> Path:
    """`<run_dir>/model` as a local dir vLLM can load: itself, or, in an object store, a copy fetched
    once per version of the model (named by a hash of its files' names, sizes and times, which the
    copy keeps: the model's fingerprint stays the same across jobs on one machine)."""
    model_dir = cfg.path("model")
    if not io.is_remote(model_dir):
        return model_dir
    version = stored_model_version(cfg)
    local = Path(tempfile.gettempdir(), "toolweave-models", version)
    if not local.is_dir():  # fetched beside, then renamed: a half-fetched copy is never used
        partial = local.with_name(f"{version}.{uuid.uuid4().hex}")
        io.download_dir(model_dir, partial)
        with contextlib.suppress(OSError):  # another job fetched it meanwhile: theirs is the same
            partial.rename(local)
        shutil.rmtree(partial, ignore_errors=True)
    return local


def stored_model_version(cfg: RunConfig) -> str:
    """A short id of the version of `<run_dir>/model` in an object store: a hash of its location, its
    files' names, sizes and times, and its `hash` file (MIRROR_VERSION_FILE), which each upload writes
    afresh: a retrain, or another run's model, is another version."""
    model_dir = cfg.path("model")
    files = stored_model_files(cfg)
    key: list = [io.location(model_dir), sorted(files.items())]
    if MIRROR_VERSION_FILE in files:
        key.append(io.read_text(io.join(model_dir, MIRROR_VERSION_FILE)))
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def served_name(cfg: RunConfig) -> str:
    """The name the model under test is known by: "trained", or the last part of `solve_with`."""
    src = cfg.evaluate.solve_with or ""
    return "trained" if src == "trained" else Path(src.rstrip("/")).name or "model-under-test"


def served_model_id(cfg: RunConfig) -> str:
    """The model id the model under test is deployed under on Serve, and asked for by the clients:
    `served_name`, and for a trained model in an object store `<served_name>-<stored_model_version>`.
    Why: Serve LLM's bucket mirror downloads a model into `<HF cache>/models--<model id>` on each
    replica's node, with one `refs/main` naming the snapshot every replica of that id loads; under one
    id for every run and version, two evaluate jobs on a node (two runs, or a retrain's evaluate while
    an older one still serves) would load each other's model."""
    name = served_name(cfg)
    return name if stored_model(cfg) is None else f"{name}-{stored_model_version(cfg)}"


def _max_positions(model: str) -> int | None:
    """The model's `max_position_embeddings` from its config.json (a local dir or one in an object
    store); None for a hub id (vLLM reads it)."""
    try:
        config = json.loads(io.read_text(io.join(model, "config.json")) or "{}")
    except (OSError, ValueError):
        return None
    n = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return int(n) if n else None


def engine_config(cfg: RunConfig) -> EmbeddedEngineConfig:
    """The second engine: the run's embedded settings, serving the model under test. Its context is
    capped at what the model was built for (a tiny model trained at 2048 positions cannot take 4096)."""
    model = model_source(cfg)
    positions = _max_positions(model)
    max_len = min(cfg.llm.embedded.max_model_len, positions) if positions else cfg.llm.embedded.max_model_len
    return cfg.llm.embedded.model_copy(update={"model": model, "served_name": served_name(cfg),
                                                "max_model_len": max_len, "port": 0})


def solve_config(cfg: RunConfig, base_url: str | None, model_url: str | None, tools: str | None = None,
                 model: str | None = None) -> RunConfig:
    """The run config the solve workers get: every role as the run has it (`base_url`, the run's
    engine, serving the roles without an endpoint of their own, as `clients_for` does), except the
    assistant, which is the model under test at `model_url`, asked for as `model` (None: its
    `served_name`); `tools` (None: solve.tools) the setting."""
    llm = cfg.llm
    if llm.engine == "serve" and base_url is not None:  # every role on the run's app route
        llm = resolve_endpoints(llm, base_url)
        base_url = None
    endpoints = {}
    for role in ROLES:
        ep = llm.endpoint(role)
        if base_url is not None and (role == "default" or role not in llm.endpoints):
            update: dict = {"base_url": base_url, "extra_base_urls": []}
            if llm.engine == "embedded":
                update["model"] = llm.embedded.served_name
            ep = ep.model_copy(update=update)
        endpoints[role] = ep
    if model_url is not None:
        endpoints["assistant"] = endpoints["assistant"].model_copy(update={
            "base_url": model_url, "extra_base_urls": [], "model": model or served_name(cfg), "api_key_env": None,
            "is_vllm": True})
    return cfg.model_copy(deep=True, update={
        "llm": llm.model_copy(update={"engine": "endpoints", "endpoints": endpoints}),
        "solve": cfg.solve.model_copy(update={"splits": list(cfg.evaluate.splits), "tools": tools or cfg.solve.tools,
                                              "tool_choice": cfg.evaluate.tool_choice or cfg.solve.tool_choice}),
    })


def pending(cfg: RunConfig, stage: Stage | None = None) -> int:
    """Instructions of the test splits not solved yet (within `run.limit`) by `stage` (None: the one of
    cfg's solve.tools); 0: no engine is needed. Raises ValueError when the splits hold no instruction
    at all: judging would have nothing of the model under test (and must not fall back to the
    training episodes)."""
    stage = stage or EVAL_SOLVES[cfg.solve.tools]
    scan = scan_inputs(stage_io(cfg, stage), lambda row: solve.in_solved_splits(cfg, row),
                       list(stage.select_columns), cfg.run.limit)
    if scan.todo + scan.already_done == 0:
        raise ValueError(f"evaluate.solve_with: no instruction in the splits {cfg.evaluate.splits} "
                         f"({scan.total} instructions in all); give instructions.holdout a test split")
    return scan.todo


def judging_config(cfg: RunConfig) -> RunConfig:
    """After solving: judge exactly `eval_episodes/` (never the training episodes as a fallback)."""
    return cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"episodes": EVAL_EPISODES})})


def model_fingerprint(cfg: RunConfig) -> dict:
    """What identifies the model under test: its source, and for a local dir (or a trained model in
    an object store: read there, nothing fetched) the size and mtime of each file (a retrain into
    `model/` changes them)."""
    if (uri := stored_model(cfg)) is not None:
        return {"solve_with": cfg.evaluate.solve_with, "source": uri,
                "files": {name: list(v) for name, v in sorted(stored_model_files(cfg).items())}}
    src = model_source(cfg)
    files = {}
    if Path(src).is_dir():
        for f in sorted(Path(src).rglob("*")):
            if f.is_file():
                st = f.stat()
                files[str(f.relative_to(src))] = [st.st_size, st.st_mtime_ns]
    return {"solve_with": cfg.evaluate.solve_with, "source": src, "files": files}


def retire_other_models_episodes(cfg: RunConfig) -> str | None:
    """Before solving: if `eval_episodes/` was solved by another model (a retrain, another
    `solve_with`), move it and its ledger aside (`<name>.replaced-<time>`) so this model solves every
    test instruction; then record this model in `eval_episodes_model.json`. Returns the name moved
    to, or None."""
    out = cfg.path(EVAL_EPISODES)
    ledgers = [stage_io(cfg, stage).ledger for stage in EVAL_SOLVES.values()]
    marker = cfg.path(MODEL_FILE)
    now = model_fingerprint(cfg)
    moved = None
    if any(io.files_under(d) for d in (out, *ledgers)):
        try:
            before = json.loads(io.read_text(marker) or "null")
        except ValueError:
            before = None  # written before markers existed, or killed before it: cannot tell
        if before != now:
            tag = f"replaced-{time.strftime('%Y%m%d-%H%M%S')}-{hashlib.sha256(json.dumps(before).encode()).hexdigest()[:6]}"
            for d in (out, *ledgers):
                _move_dir(d, d.with_name(f"{d.name}.{tag}"))
            moved = f"{out.name}.{tag}"
    io.write_text(marker, json.dumps(now, indent=2))
    return moved


def _move_dir(src: Path, dst: Path) -> None:
    """A rename locally; in an object store (no rename) each file copied, then deleted."""
    if not io.is_remote(src):
        if src.exists():
            src.rename(dst)
        return
    fs, inner = io.filesystem(src)
    _, dst_inner = io.filesystem(dst)
    for name in io.files_under(src):
        fs.copy_file(f"{inner}/{name}", f"{dst_inner}/{name}")
        fs.delete_file(f"{inner}/{name}")


def on_serve(cfg: RunConfig, runtime: Runtime) -> bool:
    """Whether the model under test gets its own Serve LLM app (the Ray runner, `llm.engine: serve`)."""
    return cfg.llm.engine == "serve" and runtime.serves_models


def serve_max_model_len(cfg: RunConfig, model: str | None = None) -> int | None:
    """The app's context: the run's first deployment's, capped at what the model was built for
    (`model`: as `served_model_source` gives it; its config.json read where it is)."""
    positions = _max_positions(model or served_model_source(cfg))
    base = cfg.llm.deployments[0].max_model_len if cfg.llm.deployments else None
    return min(n for n in (base, positions) if n) if (base or positions) else None


@contextlib.contextmanager
def model_under_test(cfg: RunConfig, runtime: Runtime, engine_cfg: EmbeddedEngineConfig) -> Iterator[str]:
    """The model under test's base URL while it is served: its own Serve LLM app (on_serve), else a
    second embedded engine on this machine."""
    if on_serve(cfg, runtime):
        with runtime.serve_model(cfg, engine_cfg.model, engine_cfg.served_name, engine_cfg.max_model_len) as url:
            yield url
        return
    from toolweave.llm.engine import EmbeddedEngine
    with EmbeddedEngine(engine_cfg, log_path=io.local_logs(cfg.path()) / "engine-under-test.log") as engine:
        yield engine.base_url


def solve_with_model_under_test(cfg: RunConfig, runtime: Runtime) -> Summary:
    """Serve the model under test (`model_under_test`), solve the test splits with it as the
    assistant into `eval_episodes/` under each tool setting (`tool_settings`), stop it. It is served
    only when some test instruction is still unsolved (a rerun of a finished run starts nothing)."""
    settings = tool_settings(cfg)
    check_retriever(cfg, settings)
    scan_cfgs = {t: solve_config(cfg, None, None, t) for t in settings}  # scanning needs no endpoint
    replaced = retire_other_models_episodes(scan_cfgs[settings[0]])  # another model's are not this one's
    if on_serve(cfg, runtime):  # the replicas load the model themselves: nothing fetched here
        model = served_model_source(cfg)
        engine_cfg = cfg.llm.embedded.model_copy(update={
            "model": model, "served_name": served_model_id(cfg), "max_model_len": serve_max_model_len(cfg, model)})
    else:
        engine_cfg = engine_config(cfg)
    about = {"model": engine_cfg.model, "served_name": engine_cfg.served_name,
             "max_model_len": engine_cfg.max_model_len, "replaced_other_models_episodes": replaced,
             "served_on": "serve" if on_serve(cfg, runtime) else "embedded", "tools": settings}
    if sum(pending(scan_cfgs[t], EVAL_SOLVES[t]) for t in settings) == 0:
        return {**_per_setting({t: runtime.run_records(scan_cfgs[t], EVAL_SOLVES[t]) for t in settings}), **about}
    base_url = runtime.base_url()  # the run's engine first: the executor plays the tools on it
    with model_under_test(cfg, runtime, engine_cfg) as model_url:
        summaries = {t: runtime.run_records(solve_config(cfg, base_url, model_url, t, engine_cfg.served_name),
                                            EVAL_SOLVES[t])
                     for t in settings}
    return {**_per_setting(summaries), **about}


def _per_setting(summaries: dict[str, Summary]) -> Summary:
    """One setting: its summary as it is; several: each under `by_tools`, with the episodes made in all."""
    if len(summaries) == 1:
        return next(iter(summaries.values()))
    return {"by_tools": summaries, "processed": sum(s.get("processed", 0) for s in summaries.values())}


def judge(ctx: StageContext, clients: dict[str, ChatModel]) -> Summary:
    """Judge (`toolweave.evaluation.run`) with the datasets and call tag of evaluate's context: the
    episodes `judged_episodes` picks, into eval/, eval_rejects/ and report/."""
    from toolweave.evaluation import Datasets, judged_episodes
    from toolweave.evaluation import run as judge_episodes
    i, o = ctx.inputs, ctx.outputs
    data = Datasets(episodes=judged_episodes(ctx.cfg, i[EVAL_EPISODES], i["episodes"]),
                    instructions=i["instructions"], toolsets=i["toolsets"], model=i["model"].path,
                    results=o["eval"], rejects=o["eval_rejects"], report=o["report"])
    return judge_episodes(ctx, clients, data)


def run(ctx: StageContext, runtime: Runtime) -> Summary:
    cfg = ctx.cfg
    extra: dict[str, Any] = {}
    if cfg.evaluate.solve_with:
        extra["solve"] = solve_with_model_under_test(cfg, runtime)
        ctx = dataclasses.replace(ctx, cfg=judging_config(cfg))
    return {**judge(ctx, runtime.clients(ctx.cfg)), **extra}


STAGE = Stage("evaluate", reads=(Dataset(EVAL_EPISODES, Episode), Dataset("episodes", Episode),
                                 Dataset("instructions", Instruction), Dataset("toolsets", Tool), Dataset("model")),
              writes=(Dataset("eval", EvalResult), Dataset("eval_rejects", Reject), Dataset("report")),
              roles=("judge", "assistant", "executor"), driver=run, shaped_by=("evaluate.tools",),
              # with solve_with its own solving (eval_solve) runs the test instructions on episode actors
              places=("episode_actors",),
              input=lambda cfg: "instructions" if cfg.evaluate.solve_with else cfg.evaluate.episodes or EVAL_EPISODES)
