"""`llm.engine: serve` in the runtime: the chain's engine is the run's Serve LLM app, deployed on
first use and removed at the end only when this run deployed it; every role's client is on the
app's route. (The real deploy on a multi-node cluster: tests/cluster/test_serve_app.py.)"""
from __future__ import annotations

import pytest

from actors.serve import ServeApp
from toolweave.config import EndpointConfig, LLMSettings, RunConfig, ServeDeploymentConfig
from toolweave.stages.clients import build_clients

ROUTE = "http://127.0.0.1:8123/toolweave-llm/v1"


def serve_cfg(tmp_path) -> RunConfig:
    return RunConfig(run_dir=str(tmp_path / "run"), llm=LLMSettings(
        engine="serve",
        endpoints={"default": EndpointConfig(model="big"), "executor": EndpointConfig(model="small")},
        deployments=[ServeDeploymentConfig(model_id="big", model_source="/b"),
                     ServeDeploymentConfig(model_id="small", model_source="/s")]))


def test_every_roles_client_is_on_the_apps_route_with_its_model(tmp_path):
    clients = build_clients(serve_cfg(tmp_path), ROUTE)
    assert {c.endpoint.base_url for c in clients.values()} == {ROUTE}
    assert clients["executor"].model == "small" and clients["judge"].model == "big"


@pytest.mark.parametrize("deployed", [True, False])
def test_the_lazy_engine_deploys_on_first_use_and_removes_only_its_own_app(tmp_path, monkeypatch, deployed):
    import actors.serve as serve_mod
    from ray_jobs.runtime import LazyEngine
    calls, deleted = [], []
    monkeypatch.setattr(serve_mod, "deploy_app",
                        lambda settings: calls.append(settings.serve.app_name) or ServeApp("toolweave-llm", ROUTE, deployed))
    monkeypatch.setattr(serve_mod.serve, "delete", deleted.append)
    engine = LazyEngine(serve_cfg(tmp_path))
    assert not engine.started and calls == []  # nothing until a stage asks
    assert engine() == ROUTE and engine() == ROUTE
    assert calls == ["toolweave-llm"]  # deployed (or attached) once for the whole chain
    engine.close()
    assert deleted == (["toolweave-llm"] if deployed else [])  # a held app is left running


def test_toolweave_serve_on_a_cluster_deploys_prints_the_route_and_leaves_the_app_held(tmp_path, monkeypatch, capsys):
    import actors.serve as serve_mod
    import training.ray_init
    from ray_jobs.cli import serve_forever
    deleted = []
    monkeypatch.setattr(training.ray_init, "init_ray", lambda cfg: True)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # as `ray job submit` sets it: a running cluster
    monkeypatch.setattr(serve_mod, "deploy_app", lambda settings: ServeApp("toolweave-llm", ROUTE, True))
    monkeypatch.setattr(serve_mod.serve, "delete", deleted.append)
    assert serve_forever(serve_cfg(tmp_path)) == 0
    assert capsys.readouterr().out.strip() == ROUTE and deleted == []
