"""The autoscaler, given cluster.yaml's node kinds (scaled down to one CPU and one node each), adds the
kind that holds what waiting actors ask for (`simulate`: cpu_simulation, not a GPU kind) and removes
it once idle. Ray's fake multi-node provider starts real raylets on this machine.

`ray.cluster_utils.AutoscalingCluster` cannot be used: it runs `ray stop --force` (every Ray on
the machine) and reads a file the wheel lacks. So the head is started here with our own
autoscaler config in a temp dir of its own, and stopped by the PIDs of its processes.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import wait_for
from toolweave.llm.engine import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

RAY = str(Path(sys.executable).with_name("ray"))


ROOT = Path(__file__).parents[2]


def scaled_node_kinds() -> tuple[dict, str]:
    """cluster.yaml's available_node_types scaled down to this machine: each worker kind one CPU and at
    most one node, its GPUs and custom resources (`simulate`, `vllm`, `trainer`) as cluster.yaml gives
    them (the fake provider's nodes advertise them; nothing here uses a GPU). The head keeps its
    resources (no CPU for work), named as the fake provider wants its head kind."""
    launcher = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    kinds = {}
    for name, kind in launcher["available_node_types"].items():
        if name == launcher["head_node_type"]:
            continue
        kinds[name] = {"resources": {**kind["resources"], "CPU": min(kind["resources"].get("CPU", 1), 1)},
                       "node_config": {}, "min_workers": 0, "max_workers": min(kind.get("max_workers", 1), 1)}
    head = launcher["available_node_types"][launcher["head_node_type"]]["resources"]
    return {"ray.head.default": {"resources": head, "node_config": {}, "max_workers": 0}, **kinds}, launcher["head_node_type"]


def autoscaler_config(gcs_port: int) -> dict:
    """The fake multi-node provider's config with cluster.yaml's node kinds (scaled_node_kinds)."""
    kinds, _ = scaled_node_kinds()
    return {
        "cluster_name": "tw-fake", "max_workers": len(kinds) - 1, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.2,
        "provider": {"type": "fake_multinode", "gcs_address": f"127.0.0.1:{gcs_port}", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"}, "docker": {},
        "available_node_types": kinds,
        "head_node_type": "ray.head.default",
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": []}


def _stop(temp_dir: str) -> None:
    """Our processes only: those whose command line names our temp dir, and their children."""
    import psutil
    ours = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(p.info["cmdline"] or []):
                ours += [p, *p.children(recursive=True)]
        except psutil.Error:
            continue
    for p in ours:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(ours, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.fixture
def fake_autoscaling_head():
    temp_dir = tempfile.mkdtemp(prefix="tw-as-", dir="/tmp")  # short: socket paths have a length limit
    port = free_port()
    config = Path(temp_dir) / "autoscaler.yaml"
    config.write_text(yaml.safe_dump(autoscaler_config(port)))
    head_cpus = int(scaled_node_kinds()[0]["ray.head.default"]["resources"].get("CPU", 0))  # cluster.yaml's: 0
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": "disabled"}
    try:
        subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={head_cpus}",
                        f"--autoscaling-config={config}", f"--temp-dir={temp_dir}", "--include-dashboard=false"],
                       env=env, check=True, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        import ray
        ray.shutdown()
        _stop(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _simulate_nodes() -> list[str]:
    import ray
    return [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("simulate")]


def _worker_nodes() -> list[dict]:
    import ray
    return [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != ray.get_runtime_context().get_node_id()]


def test_a_simulate_node_comes_for_the_actors_and_goes_when_idle(fake_autoscaling_head):
    import ray

    @ray.remote(num_cpus=0.25, resources={"simulate": 1})
    class EpisodeActor:
        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    ray.init(address=fake_autoscaling_head)
    assert _simulate_nodes() == []  # nothing to hold them yet
    t0 = time.monotonic()
    actors = [EpisodeActor.remote() for _ in range(2)]
    homes = set(ray.get([a.node.remote() for a in actors], timeout=180))
    added_s = time.monotonic() - t0
    assert homes == set(_simulate_nodes()) and len(homes) == 1  # one node of the kind holds both
    # only cluster.yaml's cpu_simulation kind came: its resources, no GPU kind for a CPU actor
    kinds, _ = scaled_node_kinds()
    workers = _worker_nodes()
    assert len(workers) == 1 and not workers[0]["Resources"].get("GPU")
    assert workers[0]["Resources"]["simulate"] == kinds["cpu_simulation"]["resources"]["simulate"]
    head = ray.get_runtime_context().get_node_id()
    assert head not in homes
    for a in actors:
        ray.kill(a)
    t1 = time.monotonic()
    wait_for(lambda: not _simulate_nodes(), 180, "the idle simulate node removed")
    print(f"simulate node added in {added_s:.1f}s, removed {time.monotonic() - t1:.1f}s after idle")
