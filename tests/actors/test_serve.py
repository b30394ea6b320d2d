"""Serve LLM deployment configs (checked without a GPU) and, as an integration test, the CPU app."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from actors.serve import PREFIX_AWARE_ROUTER, deployment_llm_config, embedded_llm_config, llm_configs
from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE
from toolweave.config import EmbeddedEngineConfig, EndpointConfig, LLMSettings, ServeDeploymentConfig


def _router_class(cfg) -> str:
    rrc = cfg.deployment_config.get("request_router_config")
    return None if rrc is None else rrc.request_router_class


def test_gpu_deployments_from_settings():
    settings = LLMSettings(engine="endpoints", deployments=[
        ServeDeploymentConfig(model_id="toolllama-7b", model_source="/ckpt/7b", min_replicas=2, max_replicas=8,
                              tensor_parallel_size=2, accelerator_type="A100",
                              engine_kwargs={"gpu_memory_utilization": 0.85}),
        ServeDeploymentConfig(model_id="judge", model_source="Qwen/Qwen2.5-7B-Instruct",
                              prefix_aware_router=False, enable_prefix_caching=False),
    ])
    first, second = llm_configs(settings)
    assert first.model_id == "toolllama-7b" and first.model_loading_config.model_source == "/ckpt/7b"
    assert first.deployment_config["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 8,
                                                             "target_ongoing_requests": 64}
    assert _router_class(first) == PREFIX_AWARE_ROUTER
    # a finite imbalance threshold: Ray's infinite default kept every request on one replica
    assert first.deployment_config["request_router_config"].request_router_kwargs == {"imbalanced_threshold": 16}
    e = first.engine_kwargs
    assert e["tensor_parallel_size"] == 2 and e["max_model_len"] == 8192 and e["enable_prefix_caching"] is True
    assert e["enable_auto_tool_choice"] is True and e["tool_call_parser"] == "hermes"
    assert e["gpu_memory_utilization"] == 0.85
    assert first.accelerator_type == "A100"
    assert _router_class(second) is None and second.engine_kwargs["enable_prefix_caching"] is False
    assert second.accelerator_type is None


def test_a_deployment_gets_its_model_family_tool_call_parser():
    llama = ServeDeploymentConfig(model_id="llama-3.1-8b-instruct", model_source="meta-llama/Llama-3.1-8B-Instruct")
    assert deployment_llm_config(llama).engine_kwargs["tool_call_parser"] == "llama3_json"
    own = llama.model_copy(update={"tool_call_parser": "pythonic"})
    assert deployment_llm_config(own).engine_kwargs["tool_call_parser"] == "pythonic"
    ours = llama.model_copy(update={"chat_template": "fallback"})  # toolweave's template: Hermes-style calls
    assert deployment_llm_config(ours).engine_kwargs["tool_call_parser"] == "hermes"


def test_deployment_without_a_model_source_is_refused():
    with pytest.raises(ValueError, match="'toolllama': model_source is empty"):
        deployment_llm_config(ServeDeploymentConfig())


def test_the_prefix_aware_router_class_resolves():
    from ray.serve.config import RequestRouterConfig

    cls = RequestRouterConfig(request_router_class=PREFIX_AWARE_ROUTER).get_request_router_class()
    assert cls.__name__ == "PrefixCacheAffinityRouter"


def test_embedded_config_is_one_cpu_bundle():
    cfg = embedded_llm_config(EmbeddedEngineConfig(max_model_len=2048), model_source="/models/smol")
    assert cfg.model_id == "smollm2"
    assert cfg.placement_group_config == {"bundles": [{"CPU": 1}]}  # no GPU: vLLM's CPU platform
    assert cfg.accelerator_type is None
    assert cfg.engine_kwargs["dtype"] == "float32" and cfg.engine_kwargs["max_model_len"] == 2048
    assert cfg.engine_kwargs["tool_strict_level"] == "parameter" and cfg.engine_kwargs["enforce_eager"] is True
    assert cfg.runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert "chat_template" not in cfg.engine_kwargs  # /models/smol cannot be read here: its own template


def test_the_fallback_chat_template_goes_to_serve_as_vllms_frontend_argument(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages[0]['content'] }}"}))
    embedded = embedded_llm_config(EmbeddedEngineConfig(), model_source=str(tmp_path))
    assert embedded.engine_kwargs["chat_template"] == FALLBACK_CHAT_TEMPLATE
    own = deployment_llm_config(ServeDeploymentConfig(model_source=str(tmp_path), chat_template="model"))
    in_s3 = deployment_llm_config(ServeDeploymentConfig(model_source="s3://bucket/run/model"))
    forced = deployment_llm_config(ServeDeploymentConfig(model_source="s3://bucket/run/model", chat_template="fallback"))
    assert "chat_template" not in own.engine_kwargs and "chat_template" not in in_s3.engine_kwargs
    assert forced.engine_kwargs["chat_template"] == FALLBACK_CHAT_TEMPLATE


@pytest.mark.integration
@pytest.mark.slow
def test_serve_embedded_answers_through_the_client():
    import ray

    from actors.serve import serve_embedded, shutdown
    from toolweave.llm.client import LLMClient

    # "local": a fresh instance even when another one on this machine wrote /tmp/ray/ray_current_cluster
    ray.init(address="local", num_cpus=8, object_store_memory=200_000_000, include_dashboard=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}})
    try:
        base_url = serve_embedded(EmbeddedEngineConfig(max_model_len=2048))
        client = LLMClient(EndpointConfig(base_url=base_url, model="smollm2", timeout_s=300))
        reply = asyncio.run(client.chat([{"role": "user", "content": "What is the capital of France?"}],
                                        max_tokens=20))
        assert "Paris" in reply.content
    finally:
        shutdown()
        ray.shutdown()


def test_bundles_carry_the_vllm_resource_and_gpus_per_tensor_parallel_worker():
    from toolweave.placement import replica_bundles
    d = ServeDeploymentConfig(model_id="big", model_source="/ckpt/70b", tensor_parallel_size=4,
                              target_ongoing_requests=32, autoscaling={"downscale_delay_s": 60})
    cfg = deployment_llm_config(d)
    assert cfg.placement_group_config == {"bundles": [{"CPU": 1.0, "vllm": 1.0, "GPU": 1.0}] * 4,
                                          "strategy": "STRICT_PACK"}  # a replica never straddles nodes
    assert cfg.deployment_config["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4,
                                                           "target_ongoing_requests": 32, "downscale_delay_s": 60}
    assert cfg.accelerator_config.kind == "gpu"
    # the replica actor's own CPU is folded into the first bundle, as Serve LLM does
    assert replica_bundles(d) == [{"CPU": 2.0, "vllm": 1.0, "GPU": 1.0}] + [{"CPU": 1.0, "vllm": 1.0, "GPU": 1.0}] * 3
    cpu = deployment_llm_config(ServeDeploymentConfig(model_source="/m", gpus_per_worker=0,
                                                      env_vars={"VLLM_CPU_KVCACHE_SPACE": "1"}))
    assert cpu.placement_group_config["bundles"] == [{"CPU": 1.0, "vllm": 1.0}]
    assert cpu.accelerator_config.kind == "cpu" and cpu.runtime_env == {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}
    with pytest.raises(ValueError, match="'m': min_replicas 3 > max_replicas 2"):
        deployment_llm_config(ServeDeploymentConfig(model_id="m", model_source="/m", min_replicas=3, max_replicas=2))


def test_every_role_resolves_to_the_app_route_with_its_own_model():
    from actors.serve import resolve_endpoints
    settings = LLMSettings(engine="serve", endpoints={
        "default": EndpointConfig(base_url="http://127.0.0.1:8000/v1", model="big", max_concurrency=7),
        "executor": EndpointConfig(base_url="http://elsewhere/v1", model="small",
                                   extra_base_urls=["http://other/v1"])},
        deployments=[ServeDeploymentConfig(model_id="big", model_source="/b"),
                     ServeDeploymentConfig(model_id="small", model_source="/s")])
    url = "http://10.0.0.1:8000/toolweave-llm/v1"
    resolved = resolve_endpoints(settings, url)
    assert resolved.endpoint("default").base_url == url and resolved.endpoint("default").max_concurrency == 7
    assert resolved.endpoint("executor").model == "small" and resolved.endpoint("executor").base_url == url
    assert resolved.endpoint("executor").extra_base_urls == []  # Serve balances its replicas itself
    assert resolved.endpoint("judge").model == "big"  # no endpoint of its own: the default's
    bare = resolve_endpoints(LLMSettings(engine="serve", deployments=settings.deployments), url)
    assert bare.endpoint("assistant").model == "big" and bare.endpoint("assistant").base_url == url
    wrong = settings.model_copy(update={"endpoints": {"judge": EndpointConfig(model="gpt-4")}})
    with pytest.raises(ValueError, match="llm.endpoints.judge: model 'gpt-4' is not deployed"):
        resolve_endpoints(wrong, url)


def test_the_app_route_uses_the_node_address_when_the_proxy_binds_every_interface(monkeypatch):
    import ray

    from actors.serve import app_base_url
    from toolweave.config import ServeAppConfig
    assert app_base_url(LLMSettings(serve=ServeAppConfig(app_name="a", port=9000))) == "http://127.0.0.1:9000/a/v1"
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "10.1.2.3")
    assert app_base_url(LLMSettings(serve=ServeAppConfig(host="0.0.0.0"))) == "http://10.1.2.3:8000/toolweave-llm/v1"


def test_the_model_under_test_gets_its_own_app_shaped_like_the_runs():
    from actors.serve import model_under_test_settings, resolve_endpoints
    settings = LLMSettings(engine="serve", endpoints={"default": EndpointConfig(model="big", max_concurrency=9)},
                           deployments=[ServeDeploymentConfig(model_id="big", model_source="/b", tensor_parallel_size=4,
                                                              min_replicas=2, max_replicas=8, max_model_len=16384)])
    mut = model_under_test_settings(settings, "/runs/x/model", max_model_len=2048)
    (d,) = mut.deployments
    assert (d.model_id, d.model_source, d.max_model_len) == ("trained", "/runs/x/model", 2048)
    assert (d.tensor_parallel_size, d.min_replicas, d.placement_resources) == (4, 2, {"vllm": 1.0})
    assert mut.serve.app_name == "toolweave-llm-under-test" and settings.serve.app_name == "toolweave-llm"
    resolved = resolve_endpoints(mut, "http://h:8000/toolweave-llm-under-test/v1")
    assert resolved.endpoint("assistant").model == "trained" and resolved.endpoint("assistant").max_concurrency == 9
    assert settings.deployments[0].model_id == "big"  # the run's own settings are untouched


def test_a_model_in_an_object_store_is_a_bucket_mirror_each_replica_downloads_and_a_local_one_a_path():
    from ray.llm._internal.common.utils.cloud_utils import CloudMirrorConfig

    from actors.serve import model_under_test_settings
    settings = LLMSettings(engine="serve", deployments=[ServeDeploymentConfig(model_id="big", model_source="/b")])
    for given in ("s3://bucket/runs/r1/model", "s3:/bucket/runs/r1/model"):  # the second as pathlib joins it
        (d,) = model_under_test_settings(settings, given, max_model_len=1024).deployments
        source = deployment_llm_config(d).model_loading_config.model_source
        assert isinstance(source, CloudMirrorConfig) and source.bucket_uri == "s3://bucket/runs/r1/model"
        assert source.storage_type == "s3"
    (d,) = model_under_test_settings(settings, "/runs/r1/model").deployments
    local = deployment_llm_config(d)
    assert local.model_loading_config.model_source == "/runs/r1/model" and local.model_id == "trained"
    assert deployment_llm_config(settings.deployments[0]).model_loading_config.model_source == "/b"


def test_an_attached_app_must_serve_the_configs_models(scripted_server):
    from actors.serve import check_serves, deploy_app
    url = scripted_server(model="smollm2").base_url
    check_serves(url, ["smollm2"], "app")
    with pytest.raises(ValueError, match=r"Serve app 'app' at .* runs but does not serve big \(it serves smollm2\)"):
        check_serves(url, ["smollm2", "big"], "app")
    with pytest.raises(ValueError, match="llm.deployments is empty: nothing to serve"):
        deploy_app(LLMSettings(engine="serve"))


def test_each_version_of_a_trained_model_in_a_bucket_gets_its_own_cache_dir_on_a_node(tmp_path, monkeypatch):
    """Ray Serve LLM's bucket mirror (its node download, run here as on a replica's node) keeps a model
    in `<HF cache>/models--<model id>` with one `refs/main` naming the snapshot to load. evaluate
    deploys each version of a trained model in S3 under its own id, so after a retrain's evaluate (or
    another run's) downloaded its version on the node, the older evaluate's replicas there still
    resolve to their own files (under one shared id they resolved to the newer ones)."""
    import uuid

    import huggingface_hub.constants
    from ray.llm._internal.common.utils.download_utils import download_model_files, get_model_location_on_disk

    from actors.serve import model_under_test_settings
    from toolweave import io
    from toolweave.config import RunConfig
    from toolweave.stages import evaluate
    from toolweave.testing.object_store import moto_s3

    hub = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))  # read by the mirror per call
    monkeypatch.setenv("HOME", str(tmp_path))  # the mirror's lock files (~/<model id>-full.lock)
    with moto_s3() as root:
        cfg = RunConfig(run_dir=f"{root}/runs/{tmp_path.name}", evaluate={"solve_with": "trained"},
                        llm={"engine": "serve", "deployments": [{"model_id": "main", "model_source": "/m"}]})

        def evaluate_on_the_node(weights: bytes) -> tuple[str, str]:
            """Upload a (re)trained model as the train stage does (with a fresh `hash`), deploy it as
            evaluate does, and download it as the replica's node does: (model id, local dir)."""
            model = cfg.path("model")
            io.write_text(io.join(model, "config.json"), "{}")
            io.write_bytes(io.join(model, "model.safetensors"), weights)
            io.write_text(io.join(model, evaluate.MIRROR_VERSION_FILE), uuid.uuid4().hex)
            name = evaluate.served_model_id(cfg)
            (d,) = model_under_test_settings(cfg.llm, evaluate.served_model_source(cfg), name).deployments
            llm_config = deployment_llm_config(d)
            assert llm_config.model_id == name  # what the clients ask for (test_evaluate) is what is deployed
            engine = llm_config.get_engine_config()  # as Serve LLM's initialize_remote_node downloads
            return name, download_model_files(model_id=engine.actual_hf_model_id, mirror_config=engine.mirror_config,
                                              download_extra_files=False)

        first, first_dir = evaluate_on_the_node(b"weights v1")
        second, second_dir = evaluate_on_the_node(b"weights v2")
    assert first != second and first.startswith("trained-") and second.startswith("trained-")
    assert {p.name for p in hub.iterdir()} == {f"models--{first}", f"models--{second}"}
    # a replica of the first evaluate starting now on this node loads the first model's files
    assert get_model_location_on_disk(first) == first_dir != second_dir
    assert (Path(first_dir) / "model.safetensors").read_bytes() == b"weights v1"
    assert (Path(get_model_location_on_disk(second)) / "model.safetensors").read_bytes() == b"weights v2"
