"""Connect to Ray: the one start-up of every path (the CLI's jobs, the trainer and the sweep called
directly, the tests). It sits in the lowest layer that uses Ray, so `ray_jobs` and `training` share it."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from typing import Any

import ray

from toolweave import io
from toolweave.config import RunConfig

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `training` imports from
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
        _guard_local_instance()
    _link_worker_logs(cfg, ctx.address_info.get("session_dir"))
    return True


_guards: list[subprocess.Popen] = []


def _guard_local_instance() -> None:
    """training/ray_guard.py beside the local instance just started: if this driver dies (a SIGKILL
    too), what Ray leaves of it (its agents, ~60 s) is ended within a second."""
    _guards[:] = [g for g in _guards if g.poll() is None]  # reaped: Ray was shut down before
    node = getattr(ray._private.worker, "_global_node", None)
    infos = getattr(node, "all_processes", None) or {}
    raylet = [i.process.pid for i in infos.get("raylet", [])]
    others = [i.process.pid for kind, group in infos.items() if kind != "raylet" for i in group]
    if not raylet:  # nothing to watch (a Ray without its processes' handles)
        return
    _guards.append(subprocess.Popen(
        [sys.executable, "-m", "training.ray_guard", *map(str, raylet[:1] + others)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([_ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}))


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
