"""The autoscaler adds a `simulate` node when actors ask for more than the cluster holds, and
removes it once idle. Ray's fake multi-node provider starts real raylets on this machine.

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


def autoscaler_config(gcs_port: int) -> dict:
    """A head that takes no work and a `simulate` kind (cluster.yaml's cpu_simulation, scaled down)."""
    return {
        "cluster_name": "tw-fake", "max_workers": 2, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.2,
        "provider": {"type": "fake_multinode", "gcs_address": f"127.0.0.1:{gcs_port}", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"}, "docker": {},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "cpu_simulation": {"resources": {"CPU": 1, "simulate": 2}, "node_config": {}, "min_workers": 0,
                               "max_workers": 2}},
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
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": "disabled"}
    try:
        subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
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
    head = ray.get_runtime_context().get_node_id()
    assert head not in homes
    for a in actors:
        ray.kill(a)
    t1 = time.monotonic()
    wait_for(lambda: not _simulate_nodes(), 180, "the idle simulate node removed")
    print(f"simulate node added in {added_s:.1f}s, removed {time.monotonic() - t1:.1f}s after idle")
