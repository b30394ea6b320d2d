"""What a run shows on the terminal: a rich progress bar per per-record stage (records done/failed,
LLM calls, tokens/s, ETA), a heartbeat line while any stage works (at least every `HEARTBEAT_S`,
on a TTY and off it), each failed record with its reason (the first few of a stage), a line per
finished stage, and one summary table at the end. Everything else (Ray, vLLM, DeepSpeed, torch,
warnings, our own logs) goes to `<run_dir>/logs/` unless `run.verbose` (`quiet_terminal`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from toolweave import secrets
from toolweave.llm.engine import engines_starting, running_base_urls
from toolweave.llm.engine_metrics import EngineActivity, engine_activity
from toolweave.printable import SafeConsole, printable
from toolweave.schemas import RecordOutcome
from toolweave.stages.base import Progress


class RedactingFile:
    """A text stream that redacts every configured secret from what is written to it (rich writes
    each `print` in one call, so a key is never split between writes). `None`: sys.stderr as it is
    at each write (tests capture it)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def _target(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def write(self, text: str) -> int:
        self._target().write(secrets.redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, ...
        return getattr(self._target(), name)


# where the run's own output goes; `quiet_terminal` points it at the terminal it saved. Every string
# printed is escaped (toolweave.printable): file names and ids from input cannot drive the terminal
console = SafeConsole(file=RedactingFile())
SHOWN_FAILURES = 3  # per stage; the rest are counted, and all are in the summary and the datasets
HEARTBEAT_S = 30.0  # while a stage works, a line at least this often (a DFSDT record can take minutes)
_last_line = time.monotonic()  # when the last line was printed (at first: the run's start)


def _hms(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"  # hours past 24 too


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _printed_line(text: str) -> None:
    global _last_line
    _last_line = time.monotonic()
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def engine_note(activity: EngineActivity | None) -> str:
    if activity is None:
        return ""
    waiting = f", {activity.waiting} waiting" if activity.waiting else ""
    cached = f" ({activity.cache_hits / activity.cache_queries:.0%} of prompts cached)" if activity.cache_queries else ""
    return (f"{activity.running} LLM calls in flight{waiting}, "
            f"{activity.prompt_tokens + activity.generation_tokens:,} engine tokens so far{cached}")


def engines_activity() -> EngineActivity | None:
    """Summed over the engines this process started (the run's, evaluate's second); None: none answers."""
    found = [a for url in running_base_urls() if (a := engine_activity(url)) is not None]
    total = None
    for a in found:
        total = a if total is None else total.add(a)
    return total


class Heartbeat:
    """While a stage works: a line at least every `every_s` seconds (counted from the last progress
    line), saying the stage, its records done/total (while a per-record view runs in it), the LLM
    calls in flight and tokens so far (from the engines' metrics) and the time elapsed. A thread
    prints it, so a record that takes minutes, or a driver stage (train, evaluate), is never silent."""

    def __init__(self, stage: str, every_s: float | None = None,
                 activity: Callable[[], EngineActivity | None] | None = None):
        self.stage = stage
        self.every_s = HEARTBEAT_S if every_s is None else every_s
        self.activity = activity  # None: the engines this process started, looked up at each line
        self.progress: Progress | None = None  # set by a ProgressView running inside this stage
        self.started = time.monotonic()  # again at __enter__: the stage's start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{stage}", daemon=True)

    def line(self) -> str:
        parts = [f"{self.stage}: working"]
        p = self.progress
        if p is not None:
            inner = "" if p.stage == self.stage else f"{p.stage} "
            parts.append(f"{inner}{p.done}/{p.total} records ({p.failed} failed)")
        if note := engine_note((self.activity or engines_activity)()):
            parts.append(note)
        elif engines_starting():  # the first stage with LLM work starts the engine (minutes on a busy CPU)
            parts.append("starting the LLM engine")
        elif p is not None:
            parts.append(f"{p.llm_calls} LLM calls, {p.prompt_tokens + p.completion_tokens:,} tokens done")
        parts.append(f"{_elapsed(time.monotonic() - self.started)} elapsed")
        return " | ".join(parts)

    def _due(self) -> float:  # seconds until a line is due, counted from the last line (the run's start:
        return _last_line + self.every_s - time.monotonic()  # Ray's start-up before a first stage counts)

    def _beat(self) -> None:
        while not self._stop.wait(max(0.0, self._due())):
            if self._due() <= 0:
                _printed_line(self.line())

    def __enter__(self) -> "Heartbeat":
        global _beating
        self._outer, _beating = _beating, self
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        global _beating
        self._stop.set()
        self._thread.join()
        _beating = self._outer


_beating: Heartbeat | None = None  # the innermost stage at work


def heartbeat(stage: str, enabled: bool = True, every_s: float | None = None) -> contextlib.AbstractContextManager:
    """A `Heartbeat` for a stage (the runner wraps each stage in one); off with `run.show_progress`."""
    return Heartbeat(stage, every_s) if enabled else contextlib.nullcontext()


def progress_line(p: Progress) -> str:
    eta = p.eta_s()
    eta_s = "?" if eta is None else _hms(eta)
    return (f"{p.stage}: {p.done}/{p.total} records ({p.failed} failed, {p.skipped} done before) | "
            f"{p.llm_calls} LLM calls | {p.tokens_per_s():.0f} tok/s | "
            f"{p.elapsed:.0f}s elapsed | ETA {eta_s}")


class ProgressView:
    """A live bar on a terminal; elsewhere (logs, Ray jobs) a plain line every `every_s` seconds."""

    def __init__(self, progress: Progress, enabled: bool = True, every_s: float = 60.0,
                 heartbeat_s: float | None = None):
        self.p = progress
        self.enabled = enabled
        self.every_s = every_s
        self.console = console
        self._bar: Bar | None = None
        self._last = time.monotonic()
        self._shown_failures = 0
        self._printed: tuple[int, ...] = ()  # the counts of the last plain line: not printed twice
        self.heartbeat_s = heartbeat_s
        self._own_beat: Heartbeat | None = None
        self._attached: tuple[Heartbeat, Progress | None] | None = None

    def _print_line(self) -> None:
        counts = (self.p.done, self.p.failed, self.p.llm_calls)
        if counts != self._printed:
            self._printed = counts
            _printed_line(progress_line(self.p))

    def _start_heartbeat(self) -> None:
        """Counts into the stage's heartbeat (the runner's, e.g. evaluate's solve inside evaluate's),
        or a heartbeat of its own where the runner has none."""
        if _beating is not None:
            self._attached = (_beating, _beating.progress)
            _beating.progress = self.p
        else:
            self._own_beat = Heartbeat(self.p.stage, self.heartbeat_s)
            self._own_beat.progress = self.p
            self._own_beat.__enter__()

    def _stop_heartbeat(self) -> None:
        if self._attached is not None:
            beat, before = self._attached
            beat.progress = before
        if self._own_beat is not None:
            self._own_beat.__exit__(None, None, None)

    def __enter__(self) -> "ProgressView":
        if self.enabled:
            self._start_heartbeat()
        if self.enabled and self.console.is_terminal:
            self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[failed]} failed | {task.fields[calls]} LLM calls | "
                                       "{task.fields[tok_s]:.0f} tok/s |"), TimeElapsedColumn(),
                            TextColumn("| ETA"), TimeRemainingColumn(), console=self.console, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.p.stage, total=self.p.total, failed=0, calls=0, tok_s=0.0)
        return self

    def update(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.p.done, failed=self.p.failed, calls=self.p.llm_calls,
                             tok_s=self.p.tokens_per_s())
        elif time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._print_line()

    def failure(self, outcome: RecordOutcome | dict[str, Any]) -> None:
        """A failed record and its reason, on the terminal (the first `SHOWN_FAILURES` of a stage)."""
        row = outcome if isinstance(outcome, dict) else outcome.to_row()
        self._shown_failures += 1
        if self._shown_failures <= SHOWN_FAILURES:
            why = row.get("message") or row.get("reason") or "failed"
            self.console.print(f"  {self.p.stage}: record {row['id']!r} failed: {why}"[:200], markup=False,
                               highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop_heartbeat()
        if self._bar is not None:
            self._bar.__exit__(*exc)
        more = self._shown_failures - SHOWN_FAILURES
        if more > 0:
            self.console.print(f"  {self.p.stage}: {more} more failed records (reasons in "
                               f"{self.p.stage}_summary.json and the stage's datasets)", markup=False)
        if self.enabled:
            self._print_line()


def console_line(text: str) -> None:
    _printed_line(text)


def stage_done(name: str, elapsed_s: float) -> None:
    global _last_line
    _last_line = time.monotonic()
    console.print(f"[green]done[/green] {name} in {elapsed_s:.1f}s", highlight=False)


_COUNTS = ("processed", "failed", "skipped_already_done", "llm_calls", "tokens_per_s")
_NOT_NOTES = (*_COUNTS, "elapsed_s", "stage", "inputs", "runner", "outputs", "prompt_tokens", "completion_tokens",
              "cost_usd", "filtered", "duplicate_ids")


def summary_table(results: dict[str, dict[str, Any]], run_dir: Path) -> None:
    """One screen: a row per stage with its counts and what it made."""
    table = Table(title=printable(f"run {run_dir}"), title_justify="left")
    for col in ("stage", "records", "failed", "done before", "LLM calls", "tok/s", "s"):
        # counts keep their width; the notes column gives way (cut with an ellipsis)
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True, min_width=len(col))
    table.add_column("notes", no_wrap=True, overflow="ellipsis", max_width=80)
    for name, s in results.items():
        counts = [printable(_short(s.get(k, ""))) for k in _COUNTS]
        notes = ", ".join(f"{k} {_short(v)}" for k, v in s.items()
                          if k not in _NOT_NOTES and isinstance(v, (int, float, str)) and v not in ("", None, 0))
        table.add_row(printable(name), *counts, f"{s.get('elapsed_s', 0):.0f}", printable(notes))
    console.print(table)
    console.print(f"summaries: {run_dir / 'run_summary.json'}; logs: {run_dir / 'logs'}", highlight=False)
    report = run_dir / "report" / "report.md"
    if report.exists():
        console.print(f"report: {report}", highlight=False)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)[:40]


@contextlib.contextmanager
def quiet_terminal(log_dir: Path, verbose: bool = False) -> Iterator[Path]:
    """While a run lasts: Python logging and warnings go to `log_dir/toolweave.log`; unless
    `verbose`, this process's stdout and stderr (file descriptors 1 and 2, so C libraries and the
    processes it starts too: Ray, the vLLM engine, DeepSpeed) go to `log_dir/output.log`, and only
    `console` (the bars, failed records, the summary) reaches the terminal."""
    global console
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "toolweave.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    before = (root.level, console)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    terminal: TextIO | None = None
    saved: list[int] = []
    try:
        if not verbose:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = [os.dup(1), os.dup(2)]
            terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
            # not a terminal (a log, a Ray job): lines as wide as a summary row needs
            console = SafeConsole(file=RedactingFile(terminal), width=None if terminal.isatty() else 160)
            out = os.open(log_dir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
        yield log_dir
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved_fd in zip((1, 2), saved):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
        if terminal is not None:
            terminal.close()
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(before[0])
        console = before[1]
