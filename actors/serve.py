"""Ray Serve LLM deployments: vLLM replicas behind one OpenAI-compatible app.

- `llm_configs(settings)`: one LLMConfig per `llm.deployments` entry, for the GPU cluster
  (autoscaling replicas, tensor parallelism, prefix caching, 8192-token context, the
  prefix-aware router of Ray 2.60 when configured).
- `serve_embedded(cfg)`: the embedded engine as a Serve LLM app on this machine's CPU (the
  "serve" backend of EmbeddedEngineConfig), returning its base URL.
- `llm.engine: serve`: `deploy_app(settings)` deploys `llm.deployments` as the app
  `llm.serve.app_name` (route `/<app_name>`), or attaches to it when it already runs;
  `remove_app(app)` deletes only an app this run deployed; `serve_app(settings)` is both as a
  context manager; `resolve_endpoints(settings, app.base_url)` points every role at the route.

Entry points that call these must sit under `if __name__ == "__main__":`: vLLM spawns processes.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve.config import RequestRouterConfig
from ray.serve.llm import LLMConfig, build_openai_app
from ray.serve.schema import ApplicationStatus

from toolweave import io
from toolweave.chat_template import serving_chat_template
from toolweave.config import EmbeddedEngineConfig, LLMSettings, RunConfig, ServeDeploymentConfig
from toolweave.llm.engine import free_port, resolve_model, smollm2_hf_dir, wait_healthy
from toolweave.model_family import tool_call_parser
from toolweave.placement import worker_bundles
from toolweave.stages.clients import resolve_endpoints  # noqa: F401 - Ray-free, used by the stages' clients

log = logging.getLogger("toolweave.serve")

PREFIX_AWARE_ROUTER = "ray.serve.llm.request_router.PrefixCacheAffinityRouter"
APP_NAME = "toolweave-llm"

# Every replica parses tool calls (forced, required and auto tool choice all work), with its family's parser.
TOOL_KWARGS = {"enable_auto_tool_choice": True, "tool_strict_level": "parameter"}


def autoscaling_config(d: ServeDeploymentConfig) -> dict[str, Any]:
    """Serve's autoscaling of one deployment's replicas (an explicit target: Serve LLM's default
    target of 1e9 ongoing requests would never add a replica)."""
    return {"min_replicas": d.min_replicas, "max_replicas": d.max_replicas,
            "target_ongoing_requests": d.target_ongoing_requests, **d.autoscaling}


def deployment_llm_config(d: ServeDeploymentConfig) -> LLMConfig:
    """The LLMConfig of one deployment (GPU bundles, or vLLM's CPU platform with gpus_per_worker 0)."""
    if not d.model_source:
        raise ValueError(f"deployment {d.model_id!r}: model_source is empty (a checkpoint dir or hub id)")
    if d.min_replicas > d.max_replicas:
        raise ValueError(f"deployment {d.model_id!r}: min_replicas {d.min_replicas} > max_replicas {d.max_replicas}")
    source: str | dict[str, str] = str(smollm2_hf_dir()) if d.model_source == "smollm2" else d.model_source
    if io.is_remote(source):
        # a checkpoint in an object store (an s3:// run dir's model): every replica's node downloads
        # it itself (Serve LLM's bucket mirror, with the AWS_* settings of the replica's environment)
        source = {"bucket_uri": io.location(source)}
    deployment: dict[str, Any] = {"autoscaling_config": autoscaling_config(d)}
    if d.prefix_aware_router:
        # sends requests sharing a prompt prefix (DFSDT siblings, one agent's turns) to the
        # replica that already holds it in its KV cache, while load stays balanced
        deployment["request_router_config"] = RequestRouterConfig(
            request_router_class=PREFIX_AWARE_ROUTER,
            request_router_kwargs={"imbalanced_threshold": d.router_imbalanced_threshold})
    template = _chat_template_kwargs(d.chat_template, d.model_source if isinstance(source, dict) else source)
    parser = tool_call_parser(d.tool_call_parser, d.model_source, template.get("chat_template"), (d.model_id,))
    engine = {**TOOL_KWARGS, "tool_call_parser": parser, "tensor_parallel_size": d.tensor_parallel_size,
              "max_model_len": d.max_model_len, "enable_prefix_caching": d.enable_prefix_caching,
              **template, **d.engine_kwargs}
    kwargs: dict[str, Any] = {}
    if d.accelerator_type:
        kwargs["accelerator_type"] = d.accelerator_type
    if d.env_vars:
        kwargs["runtime_env"] = {"env_vars": dict(d.env_vars)}
    # tensor-parallel workers share one node (NVLink); a replica never straddles two
    strategy = "STRICT_PACK" if d.tensor_parallel_size > 1 else "PACK"
    return LLMConfig(model_loading_config={"model_id": d.model_id, "model_source": source},
                     placement_group_config={"bundles": worker_bundles(d), "strategy": strategy},
                     deployment_config=deployment, engine_kwargs=engine, **kwargs)


def _chat_template_kwargs(mode: str, model: str) -> dict[str, str]:
    """vLLM's `chat_template` frontend argument (the template itself: a path would have to exist on
    every replica's node), where the model's own template drops tools."""
    template = serving_chat_template(mode, model)
    return {} if template is None else {"chat_template": template}


def llm_configs(settings: LLMSettings) -> list[LLMConfig]:
    """LLMConfigs of all configured GPU deployments (`llm.deployments`)."""
    return [deployment_llm_config(d) for d in settings.deployments]


def embedded_llm_config(cfg: EmbeddedEngineConfig, model_source: str | None = None) -> LLMConfig:
    """One CPU replica: a placement bundle with no GPU makes vLLM use its CPU platform."""
    source = model_source or resolve_model(cfg)
    template = _chat_template_kwargs(cfg.chat_template, source)
    parser = tool_call_parser(cfg.tool_call_parser, source, template.get("chat_template"), (cfg.model, cfg.served_name))
    engine = {**TOOL_KWARGS, "tool_call_parser": parser, "dtype": cfg.dtype, "max_model_len": cfg.max_model_len,
              "enforce_eager": cfg.enforce_eager, **template, **cfg.extra_engine_kwargs}
    return LLMConfig(
        model_loading_config={"model_id": cfg.served_name, "model_source": source},
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


# --- llm.engine: serve: the run's own app, by name --------------------------------------------

@dataclass(frozen=True)
class ServeApp:
    name: str
    base_url: str  # http://HOST:PORT/<name>/v1
    deployed: bool  # True: this run deployed it (and removes it); False: attached to a running one


def app_base_url(settings: LLMSettings) -> str:
    """The app's OpenAI route. Proxies bound to every interface are called on this node's address
    (the driver's: the head node, where Serve's proxy always runs)."""
    s = settings.serve
    host = s.host
    if host in ("0.0.0.0", "::"):
        import ray
        host = ray.util.get_node_ip_address()
    return f"http://{host}:{s.port}/{s.app_name}/v1"


def app_running(name: str) -> bool:
    """Whether Serve holds an app of this name that is up or coming up."""
    app = serve.status().applications.get(name)
    return app is not None and app.status in (ApplicationStatus.RUNNING, ApplicationStatus.DEPLOYING)


def deploy_app(settings: LLMSettings) -> ServeApp:
    """Deploy `llm.deployments` as the app `llm.serve.app_name`, or attach to it when it already
    runs (another job's, or `toolweave serve`'s); returns once every model answers /models.
    Ray must be initialised (connected to the cluster)."""
    configs = llm_configs(settings)
    if not configs:
        raise ValueError("llm.engine is serve but llm.deployments is empty: nothing to serve")
    s = settings.serve
    base_url = app_base_url(settings)
    deployed = not app_running(s.app_name)
    if deployed:
        log.info("deploying Serve LLM app %s (%s) at %s", s.app_name,
                 ", ".join(c.model_id for c in configs), base_url)
        # one proxy, on the head: the route resolves to it, and proxies on other nodes would only
        # duplicate it (on one machine they would fight over the port)
        serve.start(proxy_location="HeadOnly", http_options={"host": s.host, "port": s.port})
        serve.run(build_openai_app({"llm_configs": configs}), name=s.app_name, route_prefix=f"/{s.app_name}",
                  blocking=False)
        for c in configs:
            wait_healthy(base_url, s.startup_timeout_s, model=c.model_id)
    else:
        log.info("attaching to the running Serve LLM app %s at %s", s.app_name, base_url)
        wait_healthy(base_url, s.startup_timeout_s)
        check_serves(base_url, [c.model_id for c in configs], s.app_name)
    return ServeApp(s.app_name, base_url, deployed)


def check_serves(base_url: str, models: list[str], app_name: str) -> None:
    """An app attached to by name must serve every model this config asks for (another config's
    app under the same name would otherwise answer with the wrong model, or 404)."""
    import json
    import urllib.request
    with urllib.request.urlopen(f"{base_url}/models", timeout=30) as r:
        served = {m.get("id") for m in json.loads(r.read()).get("data", [])}
    missing = [m for m in models if m not in served]
    if missing:
        raise ValueError(f"Serve app {app_name!r} at {base_url} runs but does not serve {', '.join(missing)} "
                         f"(it serves {', '.join(sorted(map(str, served))) or 'nothing'}): delete it "
                         f"(python -m actors.serve down) or set another llm.serve.app_name")


def remove_app(app: ServeApp) -> None:
    """Delete the app if this run deployed it; an attached app belongs to whoever deployed it."""
    if app.deployed:
        log.info("removing Serve LLM app %s", app.name)
        serve.delete(app.name)


@contextlib.contextmanager
def serve_app(settings: LLMSettings) -> Iterator[ServeApp]:
    app = deploy_app(settings)
    try:
        yield app
    finally:
        remove_app(app)


def model_under_test_settings(settings: LLMSettings, model_source: str, served_name: str = "trained",
                              max_model_len: int | None = None) -> LLMSettings:
    """Evaluate's own app for the model under test (a checkpoint dir, a hub id, or a checkpoint's URI
    in an object store, which each replica downloads): one deployment on
    the `vllm` nodes, shaped like the run's first deployment (bundles, autoscaling, engine
    settings), under `<app_name>-under-test`; its `assistant` endpoint is the model. The judge and
    the simulated tools stay on the run's app."""
    if not settings.deployments:
        raise ValueError("llm.deployments is empty: no deployment to shape the model under test's on")
    base = settings.deployments[0]
    d = base.model_copy(update={"model_id": served_name, "model_source": model_source,
                                "max_model_len": max_model_len or base.max_model_len})
    assistant = settings.endpoint("assistant").model_copy(update={"model": served_name})
    return settings.model_copy(update={
        "deployments": [d], "endpoints": {"default": assistant, "assistant": assistant},
        "serve": settings.serve.model_copy(update={"app_name": f"{settings.serve.app_name}-under-test"})})


# --- a held app: deployed once, attached to by every job that names it ------------------------

def main(argv: list[str] | None = None) -> int:
    """`python -m actors.serve --config FILE up|down [key=value ...]` on a running cluster: `up`
    deploys `llm.deployments` as `llm.serve.app_name` (or finds it running) and prints its route;
    the app outlives this command (Serve's controller holds it) and every job whose config names
    it attaches to it instead of deploying. `down` deletes it."""
    import argparse
    import os

    import ray

    from toolweave.config import load_config
    ap = argparse.ArgumentParser(prog="python -m actors.serve")
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--config", required=True)
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    args = ap.parse_intermixed_args(argv)  # overrides may follow --config
    cfg = load_config(args.config, args.overrides)
    if not ray.is_initialized():
        ray.init(address=cfg.ray.address or os.environ.get("RAY_ADDRESS") or "auto")
    name = cfg.llm.serve.app_name
    if args.action == "down":
        if name in serve.status().applications:
            serve.delete(name)
            print(f"deleted Serve app {name}")
        else:
            print(f"no Serve app {name} is running")
        return 0
    app = deploy_app(cfg.llm)
    print(f"{'deployed' if app.deployed else 'attached to running'} Serve app {app.name}: {app.base_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
