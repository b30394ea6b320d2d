"""A runtime for tests of evaluate's model-under-test path without a cluster: per-record stages in
this process (`LocalRuntime`), the run's engine at `url`, the model under test served by `serve`
(a test's context manager yielding a scripted server's URL, in place of a Serve LLM app)."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from toolweave.config import RunConfig
from toolweave.stages.local import LocalRuntime


class ServingLocally(LocalRuntime):
    serves_models = True

    def __init__(self, url: str, serve: Callable[[RunConfig, str, str, int | None], AbstractContextManager[str]]):
        super().__init__(url=url)
        self.serve = serve

    def serve_model(self, cfg: RunConfig, model_source: str, served_name: str,
                    max_model_len: int | None) -> AbstractContextManager[str]:
        return self.serve(cfg, model_source, served_name, max_model_len)
