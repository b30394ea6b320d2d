"""The LLM clients of a stage: one per role, from the config and the engine's base URL."""
from __future__ import annotations

from toolweave.config import RunConfig
from toolweave.llm.types import ChatModel

ROLES = ("default", "assistant", "user", "executor", "judge", "builder")


def build_clients(cfg: RunConfig, base_url: str | None = None) -> dict[str, ChatModel]:
    """`base_url`: the embedded engine's URL (roles without an endpoint of their own go there); None: `cfg.llm.endpoints`."""
    from toolweave.llm.client import clients_for
    clients = dict(clients_for(cfg.llm, base_url))
    default = clients.get("default") or next(iter(clients.values()))
    return {role: clients.get(role, default) for role in ROLES}
