"""Multi-node Ray on one machine: `ray.cluster_utils.Cluster` with the node kinds of cluster.yaml.

Each node is a real raylet with its own resources. The head carries no work resource (like
cluster.yaml's head); `vllm` and `simulate` nodes carry the custom resources that place Serve LLM
replicas and episode actors. The dashboard listens on a free port (the state API needs it).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from toolweave.llm.engine import free_port

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# the replicas' and workers' environment (a replica process reads these, not the driver's)
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false",
              "RAY_AUTH_MODE": "disabled"}


@contextlib.contextmanager
def local_cluster(head_cpus: float = 1, driver_env: dict[str, str] | None = None, connect: bool = True,
                  **kinds: dict) -> Iterator[tuple[object, dict[str, object]]]:
    """A head node plus one node per keyword (`vllm={"num_cpus": 2, "resources": {"vllm": 1}}`), the
    driver connected (`driver_env`: more env vars of its runtime_env, as a submitted job's, which
    its tasks, actors and Serve deployments get; `connect=False`: no driver here, jobs are submitted);
    yields (cluster, {kind: node}). Shut down (nodes and driver) on exit."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": head_cpus, "include_dashboard": True, "dashboard_port": free_port(),
        # the job agent's HTTP port (`ray job submit`): another Ray on this machine may hold the default
        "dashboard_agent_listen_port": free_port(), "runtime_env_agent_port": free_port(),
        "object_store_memory": 100 * 1024 * 1024})
    try:
        # each node's own runtime-env agent port: a raylet that found another Ray's agent on its port
        # asked that one to set up its workers' runtime env (a working_dir it cannot fetch)
        nodes = {kind: cluster.add_node(object_store_memory=80 * 1024 * 1024, runtime_env_agent_port=free_port(), **args)
                 for kind, args in kinds.items()}
        cluster.wait_for_nodes()
        if connect:
            ray.init(address=cluster.address, runtime_env={"env_vars": {**WORKER_ENV, **(driver_env or {})}})
        yield cluster, nodes
    finally:
        if connect:
            ray.shutdown()
        cluster.shutdown()


def node_id(node) -> str:
    return node.node_id


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll until `predicate()` is truthy; its last value. Fails naming what never happened."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(interval_s)
