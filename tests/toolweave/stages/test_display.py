"""The terminal off a TTY (a pipe, a Ray job's log): plain progress lines, none printed twice."""
import io as stdio
import time

from rich.console import Console

from toolweave.stages import display
from toolweave.stages.base import Progress


def test_a_piped_view_prints_each_changed_line_once(monkeypatch):
    out = stdio.StringIO()
    monkeypatch.setattr(display, "console", Console(file=out, width=160))
    monkeypatch.setattr(display, "_last_line", time.monotonic())  # no silent start-up before: no heartbeat due
    p = Progress(stage="solve", total=2)
    with display.ProgressView(p, every_s=0.0) as view:
        view.update()
        p.done = 2
        view.update()  # the last periodic line is the final state ...
    lines = out.getvalue().splitlines()  # ... so the exit prints nothing more
    assert len(lines) == len(set(lines)) == 2 and lines[-1].startswith("solve: 2/2 records"), lines


def test_the_summary_table_keeps_every_count_readable_and_cuts_the_notes(monkeypatch, tmp_path):
    out = stdio.StringIO()
    monkeypatch.setattr(display, "console", Console(file=out, width=160))
    results = {"build_toolset": {"processed": 1, "failed": 1, "skipped_already_done": 0, "llm_calls": 2,
                                 "tokens_per_s": 7.0, "elapsed_s": 301, "imported_tools": 10},
               "sft_data": {"elapsed_s": 2, **{f"note_{i}": "x" * 30 for i in range(12)}}}
    display.summary_table(results, tmp_path)
    text = out.getvalue()
    assert all(len(line) <= 160 for line in text.splitlines())
    for shown in ("build_toolset", "sft_data", "done before", "LLM calls", "imported_tools 10", "301"):
        assert shown in text, shown
    assert "…" in text  # the long notes are cut, not the stage names
