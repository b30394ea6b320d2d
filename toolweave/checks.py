"""`toolweave check CONFIG`: what can be known before a job starts, one line per problem.

`toolweave run` and every stage job run the same check first. The rule families:
- loading: keys, types, ranges; numbers no consumer takes (inf / nan, integers past int64, seeds past
  numpy's range: `toolweave.config`); placement against the node kinds of `ray.cluster`
  (`toolweave.placement`);
- the chain: stages that exist, in an order whose inputs some earlier stage provides
  (`toolweave.stages.registry.check_config`);
- the local machine, when the run starts its own Ray: every actor, replica and train worker must fit
  its one node (CPUs, GPUs; it has no custom resources), and the episode actors must leave a CPU to
  Ray Data's read tasks.
"""
from __future__ import annotations

import os
from pathlib import Path

from toolweave.config import ConfigError, RunConfig, load_config
from toolweave.placement import Request, Resources, per_node, requests


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
    return cfg, run_problems(cfg, stages)


def run_problems(cfg: RunConfig, stages: list[str] | None = None) -> list[str]:
    """The problems of a loaded config for a job running `stages` (default: its chain)."""
    problems = chain_problems(cfg) if stages is None else []
    if stages is not None:
        cfg = cfg.model_copy(update={"stages": list(stages)})
    return problems + local_resource_problems(cfg)


def chain_problems(cfg: RunConfig) -> list[str]:
    from toolweave.stages.registry import check_config  # the stage files: only when a chain is checked
    try:
        check_config(cfg)
    except ValueError as e:
        return [str(e)]
    return []


def targets_local_ray(cfg: RunConfig) -> bool:
    """The run starts its own Ray on this machine (no cluster named, none joined)."""
    return not (cfg.ray.address or os.environ.get("RAY_ADDRESS") or cfg.ray.cluster)


def local_gpus() -> int:
    """GPUs a local Ray instance would find (Ray honours CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


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
    return [r for r in requests(cfg) if serving or not r.what.startswith("llm.deployments")]


def read_task_problems(cfg: RunConfig, node: Resources) -> list[str]:
    """Episode actors holding every CPU starve Ray Data's read tasks: the stage waits forever
    (seen with 2 actors x 1 CPU on 2 CPUs)."""
    from toolweave.stages.registry import STAGES
    if not any(STAGES[s].per_record for s in cfg.stages or ["solve"] if s in STAGES):
        return []
    held = cfg.ray.max_actors * cfg.ray.actor_num_cpus
    if held < node["CPU"]:
        return []
    return [f"ray.max_actors {cfg.ray.max_actors} x ray.actor_num_cpus {cfg.ray.actor_num_cpus:g} = {held:g} CPUs "
            f"hold all {node['CPU']:g} of the local instance: none is left for Ray Data's read tasks and the stage "
            f"would wait forever (lower ray.actor_num_cpus; the work waits on LLM replies)"]
