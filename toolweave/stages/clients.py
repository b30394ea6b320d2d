"""The LLM clients of a stage: one per role, from the config and the engine's base URL."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from toolweave.config import ROLES, EndpointConfig, LLMSettings, RunConfig
from toolweave.llm.types import ChatModel


def build_clients(cfg: RunConfig, base_url: str | None = None) -> dict[str, ChatModel]:
    """`base_url`: the embedded engine's URL (roles without an endpoint of their own go there); None: `cfg.llm.endpoints`."""
    from toolweave.llm.client import clients_for
    if cfg.llm.engine == "serve" and base_url is not None:  # the run's Serve LLM app: every role on its route
        clients = dict(clients_for(resolve_endpoints(cfg.llm, base_url)))
    else:
        clients = dict(clients_for(cfg.llm, base_url))
    default = clients.get("default") or next(iter(clients.values()))
    return {role: clients.get(role, default) for role in ROLES}


class _OnFirstUse:
    """Builds the clients once, on the first request of any role (threads may race to it)."""

    def __init__(self, cfg: RunConfig, resolve: Callable[[], str | None]):
        self.cfg, self.resolve = cfg, resolve
        self.lock = threading.Lock()
        self.clients: dict[str, ChatModel] | None = None

    def get(self) -> dict[str, ChatModel]:
        with self.lock:
            if self.clients is None:
                self.clients = build_clients(self.cfg, self.resolve())
            return self.clients


class LazyChatModel:
    """A role's client whose engine is asked for on the first request: a driver stage with nothing
    left to do (a rerun) never starts the engine. Resolving may block for minutes while the engine
    starts, so it runs off the event loop."""

    def __init__(self, shared: _OnFirstUse, role: str, model: str):
        self._shared, self.role, self.model = shared, role, model
        self._client: ChatModel | None = None

    async def chat(self, messages, **kw):
        if self._client is None:
            self._client = (await asyncio.to_thread(self._shared.get))[self.role]
        return await self._client.chat(messages, **kw)


_PLACEHOLDER_URL = "http://127.0.0.1:9/v1"  # never contacted: it only names the models


def lazy_clients(cfg: RunConfig, resolve: Callable[[], str | None]) -> dict[str, ChatModel]:
    """Clients per role that call `resolve()` (start the engine, return its base URL) on first use.
    Their `model` is already the real client's, for records made before any call (judge_model)."""
    shared = _OnFirstUse(cfg, resolve)
    names = build_clients(cfg, _PLACEHOLDER_URL)
    return {role: LazyChatModel(shared, role, getattr(names[role], "model", "")) for role in ROLES}  # type: ignore[misc]


def resolve_endpoints(settings: LLMSettings, base_url: str) -> LLMSettings:
    """The settings with every role's endpoint on the app's route. A role keeps its model, which
    must be one of the deployments (a role without an endpoint uses the first deployment's)."""
    models = [d.model_id for d in settings.deployments]
    if not models:
        raise ValueError("llm.deployments is empty: no app route to resolve endpoints to")
    endpoints = dict(settings.endpoints) or {"default": EndpointConfig(model=models[0])}
    if "default" not in endpoints:
        endpoints["default"] = EndpointConfig(model=models[0])
    resolved = {}
    for role, ep in endpoints.items():
        if ep.model not in models:
            raise ValueError(f"llm.endpoints.{role}: model {ep.model!r} is not deployed by llm.deployments "
                             f"({', '.join(models)})")
        resolved[role] = ep.model_copy(update={"base_url": base_url, "extra_base_urls": [], "is_vllm": True})
    return settings.model_copy(update={"endpoints": resolved})
