"""Serve LLM deployment configs (checked without a GPU) and, as an integration test, the CPU app."""
from __future__ import annotations

import asyncio

import pytest

from actors.serve import PREFIX_AWARE_ROUTER, deployment_llm_config, embedded_llm_config, llm_configs
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
    assert first.deployment_config["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 8}
    assert _router_class(first) == PREFIX_AWARE_ROUTER
    e = first.engine_kwargs
    assert e["tensor_parallel_size"] == 2 and e["max_model_len"] == 8192 and e["enable_prefix_caching"] is True
    assert e["enable_auto_tool_choice"] is True and e["tool_call_parser"] == "hermes"
    assert e["gpu_memory_utilization"] == 0.85
    assert first.accelerator_type == "A100"
    assert _router_class(second) is None and second.engine_kwargs["enable_prefix_caching"] is False
    assert second.accelerator_type is None


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


@pytest.mark.integration
@pytest.mark.slow
def test_serve_embedded_answers_through_the_client():
    import ray

    from actors.serve import serve_embedded, shutdown
    from toolweave.llm.client import LLMClient

    ray.init(num_cpus=8, object_store_memory=200_000_000, include_dashboard=False,
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
