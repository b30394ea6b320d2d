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
