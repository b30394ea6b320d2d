"""Text made safe to show on a terminal: one record, one line, nothing the terminal acts on.

File names, document keys, record ids and error text come from input. Raw, an escape sequence in
them retitles or clears the terminal (`ESC ] 0 ; ... BEL`, `ESC [ 2 J`), a newline or carriage
return splits or overwrites a line, a bidi override reorders what is shown. `printable` writes every
such character as a visible escape (`\\x1b`, `\\n`, `\\u202e`); `SafeConsole` is a rich Console that
does so for every string it is asked to print (its own styling and bars are unaffected).
"""
from __future__ import annotations

import re
from typing import Any

from rich.console import Console

# C0 controls, DEL, C1 controls; line/paragraph separators; bidi embeddings, overrides, isolates and
# marks; lone surrogates (an undecodable byte of a file name), which a UTF-8 terminal cannot take
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(text: Any) -> str:
    """`text` (str() of it) with every character a terminal would act on written as an escape."""
    return _UNSAFE.sub(_escape, str(text))


class SafeConsole(Console):
    """A rich Console whose `print` escapes control characters in the strings it is given."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - rich's name
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)
