"""What every job does around its stages: a Ray session (`training.ray_init.init_ray`, the one start-up of
every path: the CLI, the trainer, the sweep, the tests), the embedded engine started when a stage first
needs it, and the clean stop on SIGTERM / SIGINT."""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import ray

from toolweave import io
from toolweave.config import RunConfig
from training.ray_init import init_ray


class RunStopped(BaseException):
    """SIGTERM / SIGINT reached the job: raised in its main thread, so every `with` and `finally` of
    the run unwinds (engine stopped, ledger released, Ray shut down). A BaseException, like
    KeyboardInterrupt: no `except Exception` of a stage swallows it."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended: 143, 130


def _stop_on_signal(signum: int, frame: Any) -> None:
    # a second signal while the first one's clean stop runs: stop now, the default way
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    raise RunStopped(signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGINT raise RunStopped in the main thread. Installed before the run and again
    after `ray.init`, which sets its own SIGTERM handler (`sys.exit(15)`: the run then died by
    SIGABRT from a thread Ray still ran at exit)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop_on_signal)


@contextlib.contextmanager
def ray_session(cfg: RunConfig) -> Iterator[None]:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = init_ray(cfg)
    if started and handlers[signal.SIGTERM] is _stop_on_signal:
        stop_on_signals()
    try:
        yield
    finally:
        if started:
            ray.shutdown()
            if threading.current_thread() is threading.main_thread():
                for sig, handler in handlers.items():
                    if signal.getsignal(sig) is not signal.SIG_DFL:  # a second signal's SIG_DFL stays
                        signal.signal(sig, handler)


@contextlib.contextmanager
def llm_engine(cfg: RunConfig) -> Iterator[str | None]:
    """The run's engine's base URL while it runs: the embedded engine's, or with `llm.engine: serve`
    the route of the Serve LLM app `llm.serve.app_name` (deployed here and removed at the end, or
    attached to when another job or `toolweave serve` holds it: then left running). None when
    `llm.engine: endpoints`."""
    if cfg.llm.engine == "serve":
        from actors.serve import serve_app
        with serve_app(cfg.llm) as app:
            yield app.base_url
        return
    if cfg.llm.engine != "embedded":
        yield None
        return
    if cfg.llm.embedded.backend == "serve":
        from actors.serve import serve_embedded
        from ray import serve
        url = serve_embedded(cfg)
        try:
            yield url
        finally:
            serve.shutdown()
        return
    from toolweave.llm.engine import EmbeddedEngine
    engine = EmbeddedEngine(cfg.llm.embedded, log_path=io.local_logs(cfg.path()) / "engine.log")
    with engine:
        yield engine.base_url


class LazyEngine:
    """The run's engine, started the first time a stage asks for its URL (call the object) and
    stopped by `close()`: a rerun whose stages have nothing left to do starts no engine."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._url: str | None = None

    @property
    def started(self) -> bool:
        return self._stack is not None

    def __call__(self) -> str | None:
        with self._lock:
            if self._stack is None:
                t0 = time.monotonic()
                stack = contextlib.ExitStack()
                self._url = stack.enter_context(llm_engine(self.cfg))
                self._stack = stack
                if self.cfg.llm.engine != "endpoints":  # part of the stage that asked: said apart
                    from toolweave.stages.display import console
                    console.print(f"engine ready in {time.monotonic() - t0:.0f}s at {self._url}", highlight=False)
            return self._url

    def close(self) -> None:
        with self._lock:
            stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


@contextlib.contextmanager
def serve_model_under_test(cfg: RunConfig, model_source: str, served_name: str,
                           max_model_len: int | None) -> Iterator[str]:
    """Evaluate's model under test as its own Serve LLM app on the `vllm` nodes (shaped like the
    run's first deployment, `<app_name>-under-test`), removed afterwards; its route. `model_source`:
    a checkpoint dir, a hub id, or a checkpoint's URI in an object store (each replica downloads it)."""
    from actors.serve import model_under_test_settings, serve_app
    settings = model_under_test_settings(cfg.llm, model_source, served_name, max_model_len)
    with serve_app(settings) as app:
        yield app.base_url
