"""Terminal output is sanitised: control characters from file names, keys and ids are escaped, so
one record stays one line and nothing reaches the terminal as a command."""
import io as stdio
import re

from toolweave.printable import SafeConsole, printable
from toolweave.schemas import RecordOutcome
from toolweave.stages import display
from toolweave.stages.base import Progress

# retitle, clear screen, cursor home + erase line, a CSI as one C1 byte, OSC 8 hyperlink, a newline
# forging a second record, a carriage return overwriting the line, a bidi override, DEL, NUL, a lone surrogate
HOSTILE = ["\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\x1b[1K\r", "\x9b31m", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
           "ok\nrejected: forged.json: fine", "a\rb", "\u202eevil\u202c.json", "del\x7f", "nul\x00",
           "bad\udcffname", "line\u2028sep", "tab\there"]
TERMINAL_ACTS_ON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def test_printable_escapes_every_control_character_and_keeps_text():
    for text in HOSTILE:
        shown = printable(text)
        assert not TERMINAL_ACTS_ON.search(shown) and "\n" not in shown, (text, shown)
    assert printable("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert printable("ok\nrejected: x") == "ok\\nrejected: x"
    assert printable("\u202eevil") == "\\u202eevil" and printable("\x9b") == "\\x9b"
    assert printable("tools/été 東京.json") == "tools/été 東京.json"  # printable text is left as it is
    assert printable(7) == "7"


def test_the_run_console_prints_hostile_records_as_one_line_each(monkeypatch, tmp_path):
    out = stdio.StringIO()
    monkeypatch.setattr(display, "console", SafeConsole(file=display.RedactingFile(out), width=400))
    assert isinstance(display.SafeConsole(), SafeConsole) and type(display.console) is SafeConsole
    p = Progress(stage="solve", total=len(HOSTILE))
    with display.ProgressView(p, every_s=1e9) as view:
        for i, text in enumerate(HOSTILE[: display.SHOWN_FAILURES]):
            view.failure(RecordOutcome(id=f"q{i}{text}", ok=False, message=f"why {text}"))
    for text in HOSTILE:
        display.console_line(f"solve: {text}")
    display.summary_table({"solve": {"processed": 1, "elapsed_s": 1, "note": HOSTILE[0] + HOSTILE[5]}},
                          tmp_path / "run\x1b[2J")
    text = out.getvalue()
    assert not TERMINAL_ACTS_ON.search(text), repr(text)
    lines = text.splitlines()
    assert sum("failed: why" in line for line in lines) == display.SHOWN_FAILURES
    assert sum(line.startswith("solve: ") and " records (" not in line for line in lines) == len(HOSTILE)
    assert "\\x1b]0;pwned\\x07" in text and not any(line.startswith("rejected:") for line in lines)
