"""`llm.engine: serve` on a real 3-node Ray cluster: the run's Serve LLM app (a CPU vLLM replica of
SmolLM2) lands on the `vllm` node, answers through its route, is attached to by name, and is removed.

One cluster and one app for the whole file (start-up ~65 s on an idle 2-core box).
"""
from __future__ import annotations

import asyncio

import pytest

from tests.cluster.conftest import local_cluster, node_id
from toolweave.config import EndpointConfig, LLMSettings, ServeAppConfig, ServeDeploymentConfig
from toolweave.llm.engine import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

APP = "tw-test-llm"


def cpu_settings(port: int) -> LLMSettings:
    """One CPU replica of the shipped SmolLM2 on a `vllm` node (no GPU in its bundle)."""
    return LLMSettings(
        engine="serve",
        serve=ServeAppConfig(app_name=APP, port=port, startup_timeout_s=600),
        endpoints={"default": EndpointConfig(model="smollm2", timeout_s=300),
                   "judge": EndpointConfig(model="smollm2", timeout_s=300, max_concurrency=4)},
        deployments=[ServeDeploymentConfig(
            model_id="smollm2", model_source="smollm2", min_replicas=1, max_replicas=1, max_model_len=2048,
            gpus_per_worker=0, cpus_per_worker=1, prefix_aware_router=False,
            engine_kwargs={"dtype": "float32", "enforce_eager": True},
            env_vars={"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"})])


@pytest.fixture(scope="module")
def served():
    from actors.serve import deploy_app, remove_app

    with local_cluster(vllm={"num_cpus": 2, "resources": {"vllm": 1}},
                       sim={"num_cpus": 2, "resources": {"simulate": 2}}) as (cluster, nodes):
        settings = cpu_settings(free_port())
        app = deploy_app(settings)
        try:
            yield settings, app, nodes
        finally:
            remove_app(app)


def _replica_actors():
    from ray.util.state import list_actors

    return [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if "LLMServer" in (a.class_name or "")]


def test_the_replica_and_its_bundles_are_on_the_vllm_node(served):
    from ray.util.state import list_placement_groups

    from toolweave.placement import replica_bundles
    settings, app, nodes = served
    assert app.deployed and app.base_url.endswith(f"/{APP}/v1")
    replicas = _replica_actors()
    assert len(replicas) == 1, replicas
    assert replicas[0].node_id == node_id(nodes["vllm"])  # Ray's record, not the config
    groups = [g for g in list_placement_groups(detail=True, limit=1000) if g.state == "CREATED"]
    bundles = [b for g in groups for b in g.bundles if b.get("unit_resources", {}).get("vllm")]
    assert len(bundles) == 1 and bundles[0]["node_id"] == node_id(nodes["vllm"])
    # what the fit check of cluster.yaml counts is what Serve reserved
    assert bundles[0]["unit_resources"] == replica_bundles(settings.deployments[0])[0]


def test_every_role_answers_through_the_app_route(served):
    from actors.serve import resolve_endpoints
    from toolweave.llm.client import clients_for
    settings, app, _ = served
    resolved = resolve_endpoints(settings, app.base_url)
    clients = clients_for(resolved)
    assert {c.endpoint.base_url for c in clients.values()} == {app.base_url}

    async def ask():
        try:
            return await clients["judge"].chat([{"role": "user", "content": "What is the capital of France?"}],
                                               max_tokens=20, temperature=0.0)
        finally:
            for c in {id(c): c for c in clients.values()}.values():
                await c.aclose()

    reply = asyncio.run(ask())
    assert "Paris" in reply.content and reply.usage.completion_tokens > 0


def test_attaching_by_name_deploys_nothing_and_removes_nothing(served):
    from ray import serve

    from actors.serve import deploy_app, remove_app
    settings, app, _ = served
    before = [a.actor_id for a in _replica_actors()]
    attached = deploy_app(settings)
    assert not attached.deployed and attached.base_url == app.base_url
    assert [a.actor_id for a in _replica_actors()] == before
    assert list(serve.status().applications) == [APP]
    remove_app(attached)  # not ours: the app stays
    assert serve.status().applications[APP].status == "RUNNING"


def test_the_held_app_command_attaches_and_down_of_an_unknown_app_is_harmless(served, tmp_path, capsys):
    import yaml
    from ray import serve

    from actors.serve import main
    settings, app, _ = served
    config = tmp_path / "held.yaml"
    config.write_text(yaml.safe_dump({"llm": settings.model_dump(mode="json")}))
    assert main(["up", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"attached to running Serve app {APP}: {app.base_url}"
    assert main(["down", "--config", str(config), "llm.serve.app_name=not-there"]) == 0
    assert "no Serve app not-there is running" in capsys.readouterr().out
    assert list(serve.status().applications) == [APP]


def test_the_run_removes_the_app_it_deployed(served):
    from ray import serve

    from actors.serve import remove_app
    from tests.cluster.conftest import wait_for
    _, app, _ = served
    remove_app(app)
    wait_for(lambda: APP not in serve.status().applications and not _replica_actors(), 120,
             "the app and its replica gone after remove_app")
