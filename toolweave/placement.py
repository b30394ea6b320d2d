"""Placement by node kind: does every piece of work a config asks for fit some node kind of the
cluster it targets (`ray.cluster: cluster.yaml`)? Checked before any job starts (`toolweave.checks`,
`toolweave.smoke`), so a replica that could never be placed fails now, with one line saying what and
why, not as a job pending forever.

Work never goes to the head node kind (drivers, Serve's controller and proxy, Ray Data scheduling
live there); it must fit a worker kind. What each piece asks for:
- an episode actor: `ray.actor_num_cpus` CPUs plus `ray.actor_resources` (when a stage places them);
- a Serve LLM replica (`llm.deployments`): one bundle per tensor-parallel worker (GPUs, CPUs,
  `placement_resources`), the replica actor's CPU folded into the first, all on one node;
- a Ray Train worker: `train.num_cpus_per_worker` CPUs, a GPU when `train.use_gpu`, plus
  `train.resources_per_worker` (when a stage places them).
Which stages place what is declared (`toolweave.stages.declaration.Stage.placed`); the caller passes
the union over its chain (`toolweave.stages.registry.places`): the registry imports the config, so
this module cannot read it.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from toolweave import safe_read

# The types are toolweave.config's RunConfig and ServeDeploymentConfig, named only in annotations:
# this module stays below the config (nothing here reads it but through the objects handed in).

# what a stage places besides the Serve replicas every run places: Ray Data's episode actors (a
# per-record stage, or evaluate's own solving), Ray Train workers (train, sweep)
Placed = Literal["episode_actors", "train_workers"]

# Serve LLM adds the replica actor's own resources to its first bundle (LLMServer's default)
REPLICA_ACTOR_RESOURCES = {"CPU": 1.0}

Resources = dict[str, float]


class PlacementError(ValueError):
    """A request that no node kind can hold."""


def worker_bundles(d: "ServeDeploymentConfig") -> list[Resources]:
    """One placement bundle per tensor-parallel worker of a replica."""
    bundle = {"CPU": d.cpus_per_worker, **d.placement_resources}
    if d.gpus_per_worker:
        bundle["GPU"] = d.gpus_per_worker
    return [dict(bundle) for _ in range(d.tensor_parallel_size)]


def replica_bundles(d: "ServeDeploymentConfig") -> list[Resources]:
    """What one replica reserves: the workers' bundles, the replica actor folded into the first."""
    bundles = worker_bundles(d)
    for key, value in REPLICA_ACTOR_RESOURCES.items():
        bundles[0][key] = bundles[0].get(key, 0.0) + value
    return bundles


@dataclass(frozen=True)
class NodeKind:
    name: str
    resources: Resources
    max_workers: int


def find_cluster_file(name: str | Path, config_path: str | Path | None = None) -> Path:
    """`ray.cluster` as given (relative to the working dir), else beside the config or one dir up
    (configs/x.yaml naming the repo's cluster.yaml)."""
    path = Path(name).expanduser()
    candidates = [path]
    if config_path is not None and not path.is_absolute():
        here = Path(config_path).expanduser().resolve().parent
        candidates += [here / path, here.parent / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PlacementError(f"ray.cluster: {name} not found (looked at {', '.join(map(str, candidates))})")


def node_kinds(cluster_yaml: str | Path) -> tuple[list[NodeKind], str]:
    """(node kinds, head kind's name) of a Ray cluster launcher file."""
    data = yaml.safe_load(safe_read.read_text(Path(cluster_yaml).expanduser())) or {}
    head = data.get("head_node_type", "")
    kinds = [NodeKind(name, dict(t.get("resources") or {}), 1 if name == head else int(t.get("max_workers", 0)))
             for name, t in (data.get("available_node_types") or {}).items()]
    return kinds, head


@dataclass(frozen=True)
class Request:
    what: str  # names the config keys it comes from
    resources: Resources  # must sit on one node
    count: int  # how many must be placed at once


def requests(cfg: "RunConfig", places: Collection[Placed]) -> list[Request]:
    """Every kind of work the config places: the Serve replicas, and what its stages place (`places`)."""
    out: list[Request] = []
    if "episode_actors" in places:
        out.append(Request("episode actor (ray.actor_num_cpus, ray.actor_resources)",
                           {"CPU": cfg.ray.actor_num_cpus, **cfg.ray.actor_resources}, cfg.ray.min_actors))
    for d in cfg.llm.deployments:
        total: Resources = {}
        for bundle in replica_bundles(d):
            for k, v in bundle.items():
                total[k] = total.get(k, 0.0) + v
        out.append(Request(f"llm.deployments {d.model_id} replica (tensor_parallel_size {d.tensor_parallel_size})",
                           total, d.min_replicas))
    if "train_workers" in places:
        t = cfg.train
        worker = {"CPU": t.num_cpus_per_worker, **({"GPU": 1.0} if t.use_gpu else {}), **t.resources_per_worker}
        out.append(Request("train worker (train.num_cpus_per_worker, use_gpu, resources_per_worker)",
                           worker, t.num_workers))
    return out


def per_node(request: Resources, node: Resources) -> int:
    """How many of `request` one node of these resources holds."""
    asked = {k: v for k, v in request.items() if v > 0}
    if not asked:
        return 10**9
    return min(int(node.get(k, 0.0) // v) for k, v in asked.items())


def _show(r: Resources) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in r.items() if v) + "}"


def check_placement(cfg: "RunConfig", cluster_yaml: str | Path, places: Collection[Placed]) -> None:
    """Raise PlacementError (one line) for the first request that no worker node kind holds, or
    that the kinds' max_workers cannot hold `count` times at once (`places`: as `requests`)."""
    kinds, head = node_kinds(cluster_yaml)
    workers = [k for k in kinds if k.name != head]
    known = "; ".join(f"{k.name} {_show(k.resources)}" for k in workers) or "none"
    for req in requests(cfg, places):
        fitting = [k for k in workers if per_node(req.resources, k.resources) > 0]
        if not fitting:
            raise PlacementError(f"config {cfg.name!r}: {req.what} asks for {_show(req.resources)} on one node, "
                                 f"which no worker node kind of {cluster_yaml} holds ({known})")
        capacity = sum(min(per_node(req.resources, k.resources), 10**6) * k.max_workers for k in fitting)
        if capacity < req.count:
            raise PlacementError(f"config {cfg.name!r}: {req.count} x {req.what} {_show(req.resources)} exceed "
                                 f"what {', '.join(k.name for k in fitting)} hold at max_workers ({capacity}) "
                                 f"in {cluster_yaml}")
