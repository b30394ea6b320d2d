"""The terminal off a TTY (a pipe, a Ray job's log): plain progress lines, none printed twice."""
import io as stdio

from rich.console import Console

from toolweave.stages import display
from toolweave.stages.base import Progress


def test_a_piped_view_prints_each_changed_line_once(monkeypatch):
    out = stdio.StringIO()
    monkeypatch.setattr(display, "console", Console(file=out, width=160))
    p = Progress(stage="solve", total=2)
    with display.ProgressView(p, every_s=0.0) as view:
        view.update()
        p.done = 2
        view.update()  # the last periodic line is the final state ...
    lines = out.getvalue().splitlines()  # ... so the exit prints nothing more
    assert len(lines) == len(set(lines)) == 2 and lines[-1].startswith("solve: 2/2 records"), lines
