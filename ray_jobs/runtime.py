"""What every job does around its stages: connect to Ray (the one start-up of every path: the CLI,
the trainer, the sweep, the tests), start the embedded engine when a stage first needs it, and
hand the stages a `Runtime` whose per-record stages run on Ray Data."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import ray

from toolweave import io
from toolweave.config import RunConfig
from toolweave.stages.declaration import Runtime


# env vars a job's workers need too (never secrets: API keys stay in the environment they are in)
_PASSED_ENV = ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "VLLM_CPU_KVCACHE_SPACE")


def init_ray(cfg: RunConfig) -> bool:
    """Connect to the configured cluster (`ray.address`, or RAY_ADDRESS as set by `ray job submit`),
    else start a local instance with `ray.num_cpus` logical CPUs. Returns True when this call
    started Ray (then the caller shuts it down). The workers' output reaches this terminal only
    with `run.verbose`; it is in Ray's session logs either way."""
    if ray.is_initialized():
        return False
    # a submitted job's own runtime_env already gives its workers what it sets: Ray refuses the same
    # key twice (and its error prints every value of the job's env, credentials too)
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ and k not in _job_env_vars()}
    common: dict[str, Any] = dict(runtime_env={"env_vars": env} if env else None, log_to_driver=cfg.run.verbose,
                                  configure_logging=True,
                                  logging_level=logging.INFO if cfg.run.verbose else logging.ERROR)
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ctx = ray.init(address=address, **common)
    else:
        # a local instance of our own ("local": never one another `ray start` left on this machine);
        # token auth off unless the user asked for it (nothing listens off-host)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ctx = ray.init(address="local", num_cpus=cfg.ray.num_cpus, object_store_memory=cfg.ray.object_store_memory,
                       include_dashboard=False, **common)
    _link_worker_logs(cfg, ctx.address_info.get("session_dir"))
    return True


def _job_env_vars() -> set[str]:
    """The env var names the runtime_env of the submitted job this driver runs in sets (none outside one)."""
    try:
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    except ValueError:
        return set()
    return set((job.get("runtime_env") or {}).get("env_vars") or {})


def _link_worker_logs(cfg: RunConfig, session_dir: str | None) -> None:
    """`<run_dir>/logs/ray`: the Ray workers' output (actors, Ray Train workers: DeepSpeed, torch)
    lives in Ray's session logs; a link puts it beside the run's other logs."""
    if not session_dir or io.is_remote(cfg.path()):  # an object store holds no symlink
        return
    link = cfg.path("logs", "ray")
    with contextlib.suppress(OSError):
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.join(session_dir, "logs"), target_is_directory=True)


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


def ray_runtime(engine: LazyEngine | None) -> Runtime:
    """Per-record stages on Ray Data; the run's engine started by the first stage that asks."""
    from ray_jobs.pipeline import run_records
    base_url = engine if engine is not None else (lambda: None)
    return Runtime(base_url=base_url, run_records=lambda cfg, stage: run_records(cfg, stage, base_url),
                   serve_model=serve_model_under_test)
