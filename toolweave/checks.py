"""`toolweave check CONFIG`: what can be known before a job starts, one line per problem.

`toolweave run` and every stage job run the same check first. The rule families:
- loading: keys, types, ranges; numbers no consumer takes (inf / nan, integers past int64, seeds past
  numpy's range: `toolweave.config`);
- placement against the node kinds of `ray.cluster` (`toolweave.placement`), of what the stages
  declare they place (`toolweave.stages.registry.places`);
- the chain: stages that exist, in an order whose inputs some earlier stage, the run dir or a
  setting provides (`toolweave.stages.registry.chain_problems`);
- the local machine, when the run starts its own Ray: every actor, replica and train worker must fit
  its one node (CPUs, GPUs; it has no custom resources), and the episode actors must leave a CPU to
  Ray Data's read tasks;
- on a cluster (`ray.cluster`): the run dir, models, checkpoints, data and shared caches on storage
  every node sees (`toolweave.cluster_file`);
- credentials a gated model or a bucket needs, by name in this environment (the job's runtime_env
  reaches its driver's), never by value;
- agreement: the SFT tokenizer is the trained model's; a served model of a family toolweave knows,
  or its tool_call_parser set.
Notes (said, not failures): flash-attention on a cluster whose setup installs no flash-attn.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from toolweave.cluster_file import ClusterFile, read_cluster_file
from toolweave.config import ConfigError, RunConfig, load_config
from toolweave.llm.engine import local_gpus
from toolweave.placement import (PlacementError, Request, Resources, check_placement, find_cluster_file, per_node,
                                 requests)


def check_file(path: str | Path | None, overrides: list[str] | None = None,
               stages: list[str] | None = None) -> tuple[RunConfig | None, list[str]]:
    """Load the config as `toolweave run` does and check it; (the config or None, problem lines).
    `stages`: the stages the job runs (default: the config's chain, whose order is checked too)."""
    try:
        cfg = load_config(path, overrides)
    except ConfigError as e:
        return None, list(e.problems)
    except Exception as e:  # noqa: BLE001 - placement, YAML, a missing file: said in one line, no trace
        return None, [" ".join(f"{type(e).__name__ if not isinstance(e, ValueError) else ''} {e}".split())]
    return cfg, run_problems(cfg, stages, path)


def run_problems(cfg: RunConfig, stages: list[str] | None = None,
                 config_path: str | Path | None = None) -> list[str]:
    """The problems of a loaded config for a job running `stages` (default: its chain)."""
    problems = chain_problems(cfg) if stages is None else []
    if stages is not None:
        cfg = cfg.model_copy(update={"stages": list(stages)})
    try:
        cluster = cluster_of(cfg, config_path)
    except PlacementError as e:  # no such cluster file: nothing cluster-bound can be checked
        return [*problems, str(e)]
    return (problems + placement_problems(cfg, cluster) + local_resource_problems(cfg)
            + storage_problems(cfg, cluster) + credential_problems(cfg, cluster) + tokenizer_problems(cfg)
            + parser_problems(cfg))


def check_notes(cfg: RunConfig, config_path: str | Path | None = None) -> list[str]:
    """What the run will do otherwise than asked, said before it starts (not failures)."""
    return attention_notes(cfg, cluster_of(cfg, config_path))


def cluster_of(cfg: RunConfig, config_path: str | Path | None) -> ClusterFile | None:
    """The cluster file the config targets (`ray.cluster`; load found it already)."""
    return read_cluster_file(find_cluster_file(cfg.ray.cluster, config_path)) if cfg.ray.cluster else None


def chain_problems(cfg: RunConfig) -> list[str]:
    from toolweave.stages.registry import chain_problems  # the stage files: only when a chain is checked
    try:
        return chain_problems(cfg)
    except ValueError as e:  # an unknown stage
        return [str(e)]


def placed(cfg: RunConfig) -> frozenset[str]:
    """What the config's stages declare they place (`toolweave.stages.registry.places`)."""
    from toolweave.stages.registry import places
    return places(cfg)


def placement_problems(cfg: RunConfig, cluster: ClusterFile | None) -> list[str]:
    """The first piece of work no worker node kind of the cluster file holds (a cluster run)."""
    if cluster is None:
        return []
    try:
        check_placement(cfg, cluster.path, placed(cfg))
    except PlacementError as e:
        return [str(e)]
    return []


def targets_local_ray(cfg: RunConfig) -> bool:
    """The run starts its own Ray on this machine (no cluster named, none joined)."""
    return not (cfg.ray.address or os.environ.get("RAY_ADDRESS") or cfg.ray.cluster)


def local_node(cfg: RunConfig) -> Resources:
    """The one node of the local Ray instance `ray_jobs.runtime.init_ray` starts."""
    return {"CPU": float(cfg.ray.num_cpus or os.cpu_count() or 1), "GPU": float(local_gpus())}


def _show(r: Resources) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in r.items() if v)


def local_resource_problems(cfg: RunConfig) -> list[str]:
    """Work that the local instance's one node cannot hold (a local run only)."""
    if not targets_local_ray(cfg):
        return []
    node = local_node(cfg)
    shown = ", ".join(f"{k} {v:g}" for k, v in node.items())
    has = f"this machine's local Ray instance has {{{shown}}} (ray.num_cpus {cfg.ray.num_cpus}, GPUs visible)"
    problems = []
    for req in local_requests(cfg):
        asked = {k: v for k, v in req.resources.items() if v > 0}
        missing = sorted(k for k in asked if k not in node)
        if missing:
            problems.append(f"{req.what} asks for {', '.join(f'{k} {asked[k]:g}' for k in missing)}, a resource no "
                            f"node has: {has}; custom resources come from a cluster's node kinds (ray.cluster)")
            continue
        over = sorted(k for k in asked if asked[k] > node[k])
        if over:
            problems.append(f"{req.what} asks for {', '.join(f'{k} {asked[k]:g}' for k in over)} on one node; {has}")
        elif per_node(req.resources, node) < req.count:
            problems.append(f"{req.count} x {req.what} {{{_show(req.resources)}}} do not fit at once: {has}")
    return problems or read_task_problems(cfg, node)


def local_requests(cfg: RunConfig) -> list[Request]:
    """placement.requests, less the Serve replicas when the run serves no `llm.deployments`."""
    serving = cfg.llm.engine == "serve"
    return [r for r in requests(cfg, placed(cfg)) if serving or not r.what.startswith("llm.deployments")]


def read_task_problems(cfg: RunConfig, node: Resources) -> list[str]:
    """Episode actors holding every CPU starve Ray Data's read tasks: the stage waits forever
    (seen with 2 actors x 1 CPU on 2 CPUs)."""
    if "episode_actors" not in placed(cfg):
        return []
    held = cfg.ray.max_actors * cfg.ray.actor_num_cpus
    if held < node["CPU"]:
        return []
    return [f"ray.max_actors {cfg.ray.max_actors} x ray.actor_num_cpus {cfg.ray.actor_num_cpus:g} = {held:g} CPUs "
            f"hold all {node['CPU']:g} of the local instance: none is left for Ray Data's read tasks and the stage "
            f"would wait forever (lower ray.actor_num_cpus; the work waits on LLM replies)"]


# --- storage every node sees (a cluster run) --------------------------------------------------

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
SHIPPED_MODELS = ("tiny", "smollm2")  # built from a config, or shipped in a wheel every node installs


def is_hub_id(name: str) -> bool:
    """`org/name` that is no local path here (transformers' and vLLM's own test)."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not name.startswith(".") and not Path(name).exists()


def _stages(cfg: RunConfig) -> set[str]:
    return set(cfg.stages) or {"solve", "train"}


def stored_paths(cfg: RunConfig) -> list[tuple[str, str, bool]]:
    """(key, value, written by the run) for every place the config's stages read or write."""
    stages = _stages(cfg)
    out = [("run_dir", cfg.run_dir, True)]
    if cfg.executor.cache_path:
        out.append(("executor.cache_path", cfg.executor.cache_path, True))
    if stages & {"train", "sweep"}:
        out.append(("train.model", cfg.train.model, False))
        if cfg.train.data:
            out.append(("train.data", cfg.train.data, False))
    if "sft_data" in stages and cfg.sft.tokenizer:
        out.append(("sft.tokenizer", cfg.sft.tokenizer, False))
    if "evaluate" in stages and cfg.evaluate.solve_with not in (None, "trained"):
        out.append(("evaluate.solve_with", cfg.evaluate.solve_with, False))
    if cfg.llm.engine == "serve":
        out += [(f"llm.deployments {d.model_id} model_source", d.model_source, False) for d in cfg.llm.deployments]
    return [(k, v, w) for k, v, w in out if v not in SHIPPED_MODELS]


def storage_problems(cfg: RunConfig, cluster: ClusterFile | None) -> list[str]:
    """On a cluster, every path the run reads or writes must be one every node sees: a URI, a path
    under a mount the cluster file makes, or (read only) a copy it syncs to every node."""
    if cluster is None:
        return []
    mounts = ", ".join(cluster.shared_mounts) or "none"
    problems = []
    for key, value, written in stored_paths(cfg):
        if URI.match(value) or (not written and is_hub_id(value)) or cluster.shared_root(value):
            continue
        synced = cluster.synced_root(value)
        if synced and not written:
            continue
        why = (f"is under {synced}, a copy file_mounts syncs to each node: what one node writes there the others "
               "never see" if synced else
               "is a relative path: each node resolves it in its own working dir" if not value.startswith(("/", "~"))
               else "is on no storage every node sees")
        problems.append(f"{key}: {value} {why}; use an object-store URI (s3://, gs://) or a path under a mount "
                        f"{cluster.path.name} makes on every node (mounts: {mounts})")
    return problems


# --- credentials, by name ---------------------------------------------------------------------

# Hub orgs whose model repos are gated (a licence accepted per account): downloading them needs a token.
# Gating is per repo; these orgs gate the families toolweave serves and trains (toolweave.model_family).
GATED_HUB_ORGS = ("meta-llama/", "mistralai/", "google/gemma")
HF_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# botocore's credential chain, by name; an instance profile on every worker kind needs none of them
AWS_NAMES = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",), ("AWS_WEB_IDENTITY_TOKEN_FILE",),
             ("AWS_CONTAINER_CREDENTIALS_FULL_URI",), ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",))


def _cached(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - not a hub id huggingface_hub takes: nothing cached
        return False


def credential_problems(cfg: RunConfig, cluster: ClusterFile | None) -> list[str]:
    """A gated hub model needs a Hugging Face token, a bucket its store's credentials: their names
    must be set in this environment (a job's runtime_env env_vars reach its driver and workers)."""
    problems = []
    env = os.environ
    gated = [f"{key} {value}" for key, value, _ in stored_paths(cfg)
             if value.startswith(GATED_HUB_ORGS) and is_hub_id(value) and not (cluster is None and _cached(value))]
    if gated and not any(env.get(n) for n in HF_TOKEN_NAMES):
        problems.append(f"{', '.join(gated)}: gated on the Hugging Face Hub and no {' or '.join(HF_TOKEN_NAMES)} "
                        "is set: pass it by environment (ray job submit --runtime-env-json "
                        "'{\"env_vars\": {\"HF_TOKEN\": ...}}'), never in a file")
    schemes = {URI.match(v).group(0).lower(): k for k, v, _ in reversed(stored_paths(cfg)) if URI.match(v)}
    if "s3://" in schemes and not any(all(env.get(n) for n in names) for names in AWS_NAMES) \
            and not Path(env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")).expanduser().is_file() \
            and not (cluster is not None and cluster.instance_profile):
        problems.append(f"{schemes['s3://']}: an s3:// path and no AWS credentials by name (AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE) nor an IamInstanceProfile "
                        "on every worker kind of the cluster file")
    if "gs://" in schemes and not env.get("GOOGLE_APPLICATION_CREDENTIALS") \
            and not (cluster is not None and cluster.provider == "gcp"):
        problems.append(f"{schemes['gs://']}: a gs:// path and no GOOGLE_APPLICATION_CREDENTIALS set (nor a gcp "
                        "cluster, whose nodes carry a service account)")
    return problems


# --- what must agree --------------------------------------------------------------------------

def _same_model(a: str, b: str) -> bool:
    norm = (lambda s: s if URI.match(s) else str(Path(s).expanduser()).rstrip("/"))
    return norm(a) == norm(b)


def tokenizer_problems(cfg: RunConfig) -> list[str]:
    """The SFT tokenizer must be the trained model's (train refuses other ids, after sft_data's hours)."""
    if not _stages(cfg) & {"train", "sweep"} or cfg.train.model == "tiny" or not cfg.sft.tokenizer:
        return []
    if _same_model(cfg.sft.tokenizer, cfg.train.model):
        return []
    return [f"sft.tokenizer {cfg.sft.tokenizer} is not train.model {cfg.train.model}: token ids from another "
            "tokenizer mean other words to the model (train refuses them); leave sft.tokenizer unset to take "
            "the model's"]


def parser_problems(cfg: RunConfig) -> list[str]:
    """A served model whose family toolweave does not know, without its tool_call_parser: vLLM would
    read its calls as Hermes-style, and `tool_choice: auto` may parse none."""
    if cfg.llm.engine != "serve":
        return []
    from toolweave.chat_template import serving_chat_template
    from toolweave.model_family import FAMILIES, model_family
    problems = []
    for d in cfg.llm.deployments:
        if d.tool_call_parser or not d.model_source or serving_chat_template(d.chat_template, d.model_source):
            continue
        if model_family(d.model_source, (d.model_id,)) is None:
            problems.append(f"llm.deployments {d.model_id}: {d.model_source} is of no model family toolweave knows "
                            f"({', '.join(f.name for f in FAMILIES)}): set its tool_call_parser (vLLM's name for "
                            "how the model writes tool calls)")
    return problems


# transformers' name -> the module a node install must provide (training.model.FLASH_ATTENTION)
FLASH_ATTENTION = {"flash_attention_2": "flash-attn", "flash_attention_3": "flash-attn"}


def attention_notes(cfg: RunConfig, cluster: ClusterFile | None) -> list[str]:
    wanted = cfg.train.attn_implementation
    if cluster is None or wanted not in FLASH_ATTENTION or not _stages(cfg) & {"train", "sweep"}:
        return []
    if re.search(r"flash[-_]attn", cluster.setup):
        return []
    return [f"note: train.attn_implementation {wanted}: {cluster.path.name}'s setup installs no "
            f"{FLASH_ATTENTION[wanted]}, so train falls back to sdpa on its nodes"]
