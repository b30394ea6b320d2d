"""Serve autoscaling from `llm.deployments` settings: under load the replicas of a deployment go
from 1 to 2, after the load they go back to 1 (observed from Serve's status), each on the `vllm`
node. The replica is a cheap echo deployment with the autoscaling config and placement bundles
the run's Serve LLM app gets (actors.serve), not a CPU vLLM replica of SmolLM2: one becomes ready
~41-63 s after it is placed (docs: /work/shared ENVIRONMENT.md, tests/cluster/test_serve_app.py's
~65 s start-up) and its engine process held 1.5-2.7 GB RSS here (ps, 2026-12-07) besides its 1 GiB KV
cache. Scaling 1 -> 2 -> 1 with real replicas would add ~2 min and ~4 GB to a suite near its CI
budget on a 2-core box; what is under test (Serve's autoscaler reading actors.serve's config and
placing each replica's bundles on the `vllm` node) is the same for both. The real replica is deployed
by the run itself in tests/configs/test_smoke_runs.py::test_gpu_check_on_the_cpu."""
from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster.conftest import local_cluster, node_id, wait_for
from toolweave.config import ServeDeploymentConfig
from toolweave.llm.engine import free_port
from toolweave.placement import replica_bundles

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]


class Echo:
    async def __call__(self, request) -> str:
        await asyncio.sleep(0.5)  # a request that holds its replica for a while
        return "ok"


def _get(url: str) -> str:
    # over HTTP through the proxy, as the run's clients call the app (a DeploymentHandle in this
    # driver would keep pushing metrics after the cluster is gone)
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode()


def test_replicas_follow_the_load_up_and_back_down():
    from ray import serve
    from ray.util.state import list_actors

    from actors.serve import autoscaling_config
    d = ServeDeploymentConfig(model_id="echo", model_source="/none", min_replicas=1, max_replicas=2,
                              target_ongoing_requests=1, gpus_per_worker=0, cpus_per_worker=0,
                              autoscaling={"upscale_delay_s": 1, "downscale_delay_s": 5, "metrics_interval_s": 0.5,
                                           "look_back_period_s": 2})
    with local_cluster(head_cpus=1, vllm={"num_cpus": 4, "resources": {"vllm": 2}}) as (_, nodes):
        port = free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        app = serve.deployment(Echo, name="echo", autoscaling_config=autoscaling_config(d),
                               placement_group_bundles=replica_bundles(d), max_ongoing_requests=8).bind()
        serve.run(app, name="echo-app", route_prefix="/echo")
        url = f"http://127.0.0.1:{port}/echo"

        def running() -> int:
            status = serve.status().applications["echo-app"].deployments["echo"]
            return status.replica_states.get("RUNNING", 0)

        assert _get(url) == "ok" and running() == 1
        stop = threading.Event()

        def load():  # 8 requests in flight: 8 per replica against a target of 1
            with ThreadPoolExecutor(8) as pool:
                while not stop.is_set():
                    assert list(pool.map(_get, [url] * 8)) == ["ok"] * 8

        loader = threading.Thread(target=load, daemon=True)
        t0 = time.monotonic()
        loader.start()
        try:
            wait_for(lambda: running() == 2, 120, "a second replica under load")
            up_s = time.monotonic() - t0
        finally:
            stop.set()
            loader.join(timeout=60)
        replicas = [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
                    if "echo" in (a.class_name or "")]
        assert len(replicas) == 2 and {a.node_id for a in replicas} == {node_id(nodes["vllm"])}
        t1 = time.monotonic()
        wait_for(lambda: running() == 1, 120, "back to one replica after the load")
        print(f"scaled 1 -> 2 in {up_s:.1f}s under load, 2 -> 1 {time.monotonic() - t1:.1f}s after it")
        serve.shutdown()
