"""The driver's live progress line: records done/failed, LLM calls, tokens/s, ETA (rich)."""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from toolweave.stages.base import Progress


def _hms(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"  # hours past 24 too


def progress_line(p: Progress) -> str:
    eta = p.eta_s()
    eta_s = "?" if eta is None else _hms(eta)
    return (f"{p.stage}: {p.done}/{p.total} records ({p.failed} failed, {p.skipped} done before) | "
            f"{p.llm_calls} LLM calls | {p.tokens_per_s():.0f} tok/s | "
            f"{p.elapsed:.0f}s elapsed | ETA {eta_s}")


class ProgressView:
    """A live line on a terminal; a plain line every `every_s` seconds otherwise (logs, Ray jobs)."""

    def __init__(self, progress: Progress, enabled: bool = True, every_s: float = 10.0):
        self.p = progress
        self.enabled = enabled
        self.every_s = every_s
        self.console = Console(stderr=True)
        self._live: Live | None = None
        self._last = 0.0

    def __enter__(self) -> "ProgressView":
        if self.enabled and self.console.is_terminal:
            self._live = Live(Text(progress_line(self.p)), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def update(self) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(Text(progress_line(self.p)))
        elif time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            print(progress_line(self.p), file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(Text(progress_line(self.p)))
            self._live.__exit__(*exc)
        elif self.enabled:
            print(progress_line(self.p), file=sys.stderr, flush=True)
