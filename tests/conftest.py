"""Root fixtures shared by every engineer's tests.

- `scripted_server(...)`: a factory for ScriptedServer (OpenAI-compatible, scripted replies and
  faults); every server it made is closed at teardown.
- `embedded_base_url`: ONE embedded vLLM engine (subprocess backend, SmolLM2) for the whole
  session; its model name is `EmbeddedEngineConfig().served_name`. Integration tests only.
- tests marked `gpu` are skipped when torch sees no CUDA device.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU either way
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only():
    """A secret a test registers (a config's HF_TOKEN, say) is forgotten after it: the registry is per
    process, and a placeholder token once redacted a later test's tool names."""
    from toolweave import secrets
    with secrets.isolated():
        yield


@pytest.fixture
def scripted_server():
    from toolweave.testing.scripted_server import ScriptedServer

    servers = []

    def make(replies=None, handler=None, latency_s=0.0, faults=None, **kw):
        srv = ScriptedServer(replies=replies, handler=handler, latency_s=latency_s, faults=faults, **kw).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.close()


@pytest.fixture(scope="session")
def embedded_base_url(tmp_path_factory):
    """One embedded engine (vLLM subprocess, SmolLM2) shared by the whole session; its base URL.
    TOOLWEAVE_EMBEDDED_BASE_URL reuses an engine that is already running instead."""
    if url := os.environ.get("TOOLWEAVE_EMBEDDED_BASE_URL"):
        yield url
        return
    from toolweave.config import EmbeddedEngineConfig
    from toolweave.llm.engine import EmbeddedEngine

    log_path = tmp_path_factory.mktemp("embedded-engine") / "engine.log"
    with EmbeddedEngine(EmbeddedEngineConfig(), log_path=log_path) as engine:
        yield engine.base_url
