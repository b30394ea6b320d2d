"""`toolweave` command line (the console script) and `python -m ray_jobs.<stage>`: one subcommand per
declared stage (`toolweave.stages.registry`), `run` (the chain a config lists), `serve` and `toolset`.
Local and submitted jobs run the same code: `ray.init` starts a local instance, or joins the cluster
`ray job submit` put us on.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig, load_config
from toolweave.printable import printable
from toolweave.stages import display
from toolweave.stages.declaration import Stage
from toolweave.stages.registry import STAGES, chain


def _add_run_args(p: argparse.ArgumentParser, config_flag: bool = False) -> None:
    if config_flag:  # python -m ray_jobs.<stage> --config FILE
        p.add_argument("--config", help="YAML run config (configs/...)")
    else:
        p.add_argument("config", nargs="?", help="YAML run config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. solve.width=3 run.limit=4")
    p.add_argument("--retry-failed", action="store_true",
                   help="rerun exactly the records that failed before (their error rows are replaced)")
    p.add_argument("--verbose", action="store_true", help="show Ray, vLLM, DeepSpeed and torch output live too")
    p.add_argument("--smoke", action="store_true", help="the config scaled down (tiny models, small counts; "
                   "run_dir <run_dir>-smoke): toolweave/smoke.py lists what changes")
    p.add_argument("--smoke-cpu", action="store_true", help="with --smoke: replicas and train workers on CPUs "
                   "(default: so where the run starts its own Ray and sees no GPU)")
    p.add_argument("--smoke-llm", metavar="URL", help="with --smoke: every role's endpoint is this "
                   "OpenAI-compatible URL (a scripted server, a running engine)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolweave", description="tool-use training data, fine-tuning and evaluation on Ray")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ts = sub.add_parser("toolset", help="import tool catalogues into a toolset dataset")
    ts_sub = ts.add_subparsers(dest="toolset_command", required=True)
    imp = ts_sub.add_parser("import", help="import tool files (ToolAlpaca, OpenAPI, ToolBench, OpenAI tools)")
    imp.add_argument("paths", nargs="*")
    imp.add_argument("--out", required=True, help="output dataset directory (Parquet)")
    imp.add_argument("--mcp", action="append", default=[], metavar="SERVER",
                     help="a live MCP server: a streamable-HTTP URL or a command line over stdio (repeatable)")
    _add_run_args(sub.add_parser("run", help="run the chain of stages a config lists"))
    chk = sub.add_parser("check", help="check a config before any job starts: one line per problem")
    chk.add_argument("config", help="YAML run config (see configs/)")
    chk.add_argument("overrides", nargs="*", help="key=value overrides, as for run")
    pln = sub.add_parser("plan", help="what a config places on which node kind, and its tokens, replica-hours "
                                      "and GPU-hours on paper")
    pln.add_argument("config", help="YAML run config (see configs/)")
    pln.add_argument("overrides", nargs="*", help="key=value overrides, as for run")
    _add_run_args(sub.add_parser("serve", help="start the configured engine and print its base URL"))
    sub.add_parser("verify-run", help="check a run dir's committed parts and ledgers offline; say what a "
                                      "rerun would redo").add_argument("run_dir", help="a run dir: path or URI")
    for name in STAGES:
        _add_run_args(sub.add_parser(name.replace("_", "-"), help=f"run the {name} stage"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "toolset":
        from toolweave.toolsets.command import import_command
        if not args.paths and not args.mcp:
            print("toolweave toolset import: give files, folders or --mcp SERVER", file=sys.stderr)
            return 2
        return import_command(args.paths, args.out, args.mcp)
    if args.command == "check":
        return check_command(args.config, args.overrides)
    if args.command == "plan":
        return plan_command(args.config, args.overrides)
    if args.command == "verify-run":
        from toolweave.stages.run_integrity import verify_run_command
        return verify_run_command(args.run_dir)
    return run_from_cli(args.command.replace("-", "_"), args.config, _overrides(args), _smoke(args))


def stage_main(stage: Stage | str) -> None:
    """`python -m ray_jobs.<stage> --config FILE [key=value ...]` (a Stage, or "serve")."""
    name = stage if isinstance(stage, str) else stage.name
    p = argparse.ArgumentParser(prog=f"python -m ray_jobs.{name}")
    _add_run_args(p, config_flag=True)
    args = p.parse_args()
    sys.exit(run_from_cli(name, args.config, _overrides(args), _smoke(args)))


def _overrides(args: argparse.Namespace) -> list[str]:
    flags = {"run.retry_failed=true": args.retry_failed, "run.verbose=true": args.verbose}
    return [*args.overrides, *(k for k, on in flags.items() if on)]


def _smoke(args: argparse.Namespace) -> dict[str, Any] | None:
    """toolweave.smoke.smoke_config's options, or None without --smoke."""
    if not args.smoke:
        return None
    return {"cpu": True if args.smoke_cpu else None, "llm_url": args.smoke_llm}


def check_command(config: str, overrides: list[str]) -> int:
    """`toolweave check CONFIG [key=value ...]`: the checks every run and stage job does first."""
    from toolweave.checks import check_file, check_notes
    cfg, problems = check_file(config, overrides)
    for line in problems + (check_notes(cfg, config) if cfg is not None else []):
        print(printable(f"{config}: {line}"))
    if problems:
        return 1
    print(printable(f"{config}: ok ({', '.join(cfg.stages) or 'no stages'})"))
    return 0


def plan_command(config: str, overrides: list[str]) -> int:
    """`toolweave plan CONFIG [key=value ...]`: placement per node kind and the cost on paper."""
    from toolweave.plan import plan_lines
    try:
        cfg = load_config(config, overrides)
        lines = plan_lines(cfg, config)
    except Exception as e:  # noqa: BLE001 - a bad config, no such cluster file: said in one line, as check says it
        print(printable(f"{config}: {_one_line(e)}"))
        return 1
    for line in lines:
        print(printable(line))
    return 0


def run_from_cli(command: str, config: str | None, overrides: list[str], smoke: dict[str, Any] | None = None) -> int:
    """`toolweave run CONFIG` (the chain `cfg.stages`), `toolweave serve CONFIG` or `toolweave <stage> CONFIG`."""
    if command == "serve":
        from toolweave.checks import cluster_of, placement_problems
        try:
            cfg = load_config(config, overrides)
            problems = placement_problems(cfg, cluster_of(cfg, config))  # replicas no node kind holds
        except Exception as e:  # noqa: BLE001 - a bad config is the user's to fix: say what, no trace
            problems = [_one_line(e)]
        for problem in problems:
            print(printable(f"toolweave: config {config!r}: {problem}"), file=sys.stderr)
        if problems:
            return 2
        return serve_forever(cfg)
    import signal

    from ray_jobs.runtime import RunStopped, stop_on_signals
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop_on_signals()  # SIGTERM / SIGINT: a clean stop, exit 143 / 130
    try:
        cfg, stages = _checked_chain(command, config, overrides, smoke)
        if cfg is None:
            return 2
        with run_logs(cfg) as log_dir, display.quiet_terminal(log_dir, verbose=cfg.run.verbose) as logs:
            try:
                results = run_stages(cfg, stages)
            except KeyboardInterrupt:  # a SIGINT before our handler was in place
                raise RunStopped(2) from None
            except RunStopped:
                raise
            except (ValueError, RuntimeError, FileNotFoundError) as e:  # said in one line; the trace is in the log
                logging.getLogger("toolweave.jobs").info("toolweave %s stopped", command, exc_info=True)
                display.console.print(f"toolweave {command}: {e}", markup=False, highlight=False)
                return 1
            except BaseException as e:
                logging.getLogger("toolweave.jobs").exception("toolweave %s failed", command)
                display.console.print(f"toolweave {command}: {type(e).__name__}: {e} (traceback in "
                                      f"{logs / 'toolweave.log'})", markup=False, highlight=False)
                raise SystemExit(1) from None
            display.summary_table(results, cfg.path())
        return 0
    except RunStopped as e:
        display.console.print(f"toolweave {command}: {e}; committed batches are kept, a rerun resumes",
                              markup=False, highlight=False)
        return e.exit_code
    finally:  # a caller's own handlers (tests call this in-process)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def _checked_chain(command: str, config: str | None, overrides: list[str],
                   smoke: dict[str, Any] | None) -> tuple[RunConfig | None, list[Stage]]:
    """The config and the stages to run after `toolweave check`'s checks (e.g. sft_data without verify,
    an actor no node holds: said before hours of work, not after); with `smoke`, of the scaled-down
    config. (None, []) when refused: each problem is printed on its own line."""
    from toolweave.checks import check_file
    cfg, problems = check_file(config, overrides, None if command == "run" else [command])
    stages: list[Stage] = []
    if smoke is not None and cfg is not None:
        from toolweave.smoke import smoke_checked
        cfg, problems = smoke_checked(cfg, None if command == "run" else [command], **smoke)
    if cfg is not None and not problems:
        try:
            stages = chain(cfg.stages if command == "run" else [command])
        except ValueError as e:
            problems = [str(e)]
    for problem in problems:
        print(printable(f"toolweave: config {config!r}: {problem}"), file=sys.stderr)
    if cfg is not None and not problems and not stages:
        print(printable(f"toolweave: config {config!r} lists no stages (set `stages:`)"), file=sys.stderr)
    return (cfg, stages) if cfg is not None and stages and not problems else (None, [])


@contextlib.contextmanager
def run_logs(cfg: RunConfig) -> Iterator[Path]:
    """The local directory the run's logs are written to: `<run_dir>/logs`, or with a run dir in an
    object store (no appending there) a local one whose files are uploaded to `<run_dir>/logs/` at the end."""
    from toolweave import io
    local = io.local_logs(cfg.path())
    if not io.is_remote(cfg.path()):
        yield local
        return
    try:
        yield local
    finally:
        for f in sorted(local.glob("*.log")):
            io.write_bytes(io.join(cfg.path("logs"), f.name), f.read_bytes())


def _one_line(e: Exception) -> str:
    from pydantic import ValidationError
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
    return str(e)


def run_stages(cfg: RunConfig, stages: list[Stage]) -> dict[str, Any]:
    """Stages in order, sharing one Ray session and (when any calls an LLM) one engine start."""
    from ray_jobs.pipeline import RayRuntime
    from ray_jobs.runtime import LazyEngine, ray_session
    from toolweave.stages.registry import context
    from training.drivers import bind
    results: dict[str, Any] = {}
    with ray_session(cfg):
        # started by the first stage with LLM work left, shared by the rest of the chain
        engine = LazyEngine(cfg) if any(s.roles for s in stages) else None
        runtime = RayRuntime(engine)
        try:
            for stage in map(bind, stages):
                t0 = time.monotonic()
                with display.heartbeat(stage.name, enabled=cfg.run.show_progress):  # a line a minute or more often
                    results[stage.name] = stage.run(context(cfg, stage), runtime)
                results[stage.name].setdefault("elapsed_s", round(time.monotonic() - t0, 1))
                if not stage.per_record:  # a per-record stage's bar ends in its own line
                    display.stage_done(stage.name, time.monotonic() - t0)
        finally:
            if engine is not None:
                engine.close()
    from toolweave.stages.lifecycle import write_summary_file
    return write_summary_file(cfg.path("run_summary.json"), results)


def front_reply_cap(cfg: RunConfig) -> int:
    """The serve front's cap on an engine reply it reads whole: the largest of the endpoints' caps."""
    from toolweave.llm.front import DEFAULT_MAX_REPLY_BYTES
    return max((e.max_reply_bytes for e in cfg.llm.endpoints.values()), default=DEFAULT_MAX_REPLY_BYTES)


class _no_engine:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def serve_forever(cfg: RunConfig) -> int:
    """`toolweave serve`: start the configured engine, print the base URL of its OpenAI-conformant
    front (toolweave/llm/front.py: forced tool calls come back as `tool_calls`), wait for Ctrl-C.
    SIGTERM/SIGINT/SIGKILL stop the engine with this process (toolweave/llm/engine_guard.py)."""
    from ray_jobs.runtime import llm_engine, ray_session
    from toolweave.llm.front import ConformantFront
    if cfg.llm.engine == "serve":
        return hold_serve_app(cfg)
    if cfg.llm.engine != "embedded":
        print(json.dumps({role: e.base_url for role, e in cfg.llm.endpoints.items()}))
        return 0
    with ray_session(cfg) if cfg.llm.embedded.backend == "serve" else _no_engine():
        with llm_engine(cfg) as base_url, ConformantFront(base_url, max_reply_bytes=front_reply_cap(cfg)) as front:
            print(front.base_url, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def hold_serve_app(cfg: RunConfig) -> int:
    """`toolweave serve` with `llm.engine: serve`: deploy the app `llm.serve.app_name` (or find it
    running). On a cluster the app outlives this command (Serve's controller holds it): its route is
    printed, every job whose config names it attaches to it, and `python -m actors.serve --config
    FILE down` removes it. Without a cluster the Ray instance is this process's: the route's
    OpenAI-conformant front is printed and both are held until Ctrl-C."""
    import os

    import ray

    from actors.serve import deploy_app, remove_app
    from training.ray_init import init_ray
    from toolweave.llm.front import ConformantFront
    on_cluster = bool(cfg.ray.address or os.environ.get("RAY_ADDRESS"))  # else init_ray starts a local Ray
    init_ray(cfg)
    app = deploy_app(cfg.llm)
    if on_cluster:
        print(printable(app.base_url), flush=True)
        return 0
    try:
        with ConformantFront(app.base_url, max_reply_bytes=front_reply_cap(cfg)) as front:
            print(front.base_url, flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        remove_app(app)
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
