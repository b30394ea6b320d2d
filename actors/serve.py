"""Ray Serve LLM deployments: vLLM replicas behind one OpenAI-compatible app.

- `llm_configs(settings)`: one LLMConfig per `llm.deployments` entry, for the GPU cluster
  (autoscaling replicas, tensor parallelism, prefix caching, 8192-token context, the
  prefix-aware router of Ray 2.60 when configured).
- `serve_embedded(cfg)`: the embedded engine as a Serve LLM app on this machine's CPU (the
  "serve" backend of EmbeddedEngineConfig), returning its base URL.

Entry points that call these must sit under `if __name__ == "__main__":`: vLLM spawns processes.
"""
from __future__ import annotations

import logging
from typing import Any

from ray import serve
from ray.serve.config import RequestRouterConfig
from ray.serve.llm import LLMConfig, build_openai_app

from toolweave.config import EmbeddedEngineConfig, LLMSettings, RunConfig, ServeDeploymentConfig
from toolweave.llm.engine import free_port, resolve_model, wait_healthy

log = logging.getLogger("toolweave.serve")

PREFIX_AWARE_ROUTER = "ray.serve.llm.request_router.PrefixCacheAffinityRouter"
APP_NAME = "toolweave-llm"

# Every replica parses tool calls (forced, required and auto tool choice all work).
TOOL_KWARGS = {"enable_auto_tool_choice": True, "tool_call_parser": "hermes", "tool_strict_level": "parameter"}


def deployment_llm_config(d: ServeDeploymentConfig) -> LLMConfig:
    """The LLMConfig of one GPU deployment."""
    if not d.model_source:
        raise ValueError(f"deployment {d.model_id!r}: model_source is empty (a checkpoint dir or hub id)")
    deployment: dict[str, Any] = {"autoscaling_config": {"min_replicas": d.min_replicas,
                                                         "max_replicas": d.max_replicas}}
    if d.prefix_aware_router:
        # sends requests sharing a prompt prefix (DFSDT siblings, one agent's turns) to the
        # replica that already holds it in its KV cache, while load stays balanced
        deployment["request_router_config"] = RequestRouterConfig(request_router_class=PREFIX_AWARE_ROUTER)
    engine = {**TOOL_KWARGS, "tensor_parallel_size": d.tensor_parallel_size, "max_model_len": d.max_model_len,
              "enable_prefix_caching": d.enable_prefix_caching, **d.engine_kwargs}
    kwargs: dict[str, Any] = {}
    if d.accelerator_type:
        kwargs["accelerator_type"] = d.accelerator_type
    return LLMConfig(model_loading_config={"model_id": d.model_id, "model_source": d.model_source},
                     deployment_config=deployment, engine_kwargs=engine, **kwargs)


def llm_configs(settings: LLMSettings) -> list[LLMConfig]:
    """LLMConfigs of all configured GPU deployments (`llm.deployments`)."""
    return [deployment_llm_config(d) for d in settings.deployments]


def embedded_llm_config(cfg: EmbeddedEngineConfig, model_source: str | None = None) -> LLMConfig:
    """One CPU replica: a placement bundle with no GPU makes vLLM use its CPU platform."""
    engine = {**TOOL_KWARGS, "dtype": cfg.dtype, "max_model_len": cfg.max_model_len,
              "enforce_eager": cfg.enforce_eager, "tool_call_parser": cfg.tool_call_parser,
              **cfg.extra_engine_kwargs}
    return LLMConfig(
        model_loading_config={"model_id": cfg.served_name, "model_source": model_source or resolve_model(cfg)},
        placement_group_config={"bundles": [{"CPU": 1}]},
        deployment_config={"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}},
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": str(cfg.kv_cache_gb)}},
        engine_kwargs=engine)


def _serve_app(configs: list[LLMConfig], host: str, port: int, timeout_s: float, model: str) -> str:
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_openai_app({"llm_configs": configs}), name=APP_NAME, blocking=False)
    base_url = f"http://{host}:{port}/v1"
    wait_healthy(base_url, timeout_s, model=model)
    return base_url


def serve_embedded(cfg: EmbeddedEngineConfig | RunConfig) -> str:
    """Deploy the embedded model on Ray Serve LLM (CPU) and return its base URL.
    Ray must be initialised (the launcher does it); stop with `shutdown()`.
    A whole RunConfig is accepted too (its `llm.embedded` is used)."""
    if isinstance(cfg, RunConfig):
        cfg = cfg.llm.embedded
    port = cfg.port or free_port(cfg.host)
    log.info("deploying %s on Ray Serve LLM at %s:%d", cfg.served_name, cfg.host, port)
    return _serve_app([embedded_llm_config(cfg)], cfg.host, port, cfg.startup_timeout_s, cfg.served_name)


def serve_deployments(settings: LLMSettings, host: str = "127.0.0.1", port: int = 8000,
                      timeout_s: float = 1800.0) -> str:
    """Deploy every `llm.deployments` model as one OpenAI app on the cluster; its base URL."""
    configs = llm_configs(settings)
    if not configs:
        raise ValueError("llm.deployments is empty: nothing to serve")
    return _serve_app(configs, host, port, timeout_s, configs[0].model_id)


def shutdown() -> None:
    serve.shutdown()
