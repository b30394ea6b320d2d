"""Configured secrets and the one place they are taken out of text: `redact`.

Keys are read through `read_secret(env_name)` (whitespace stripped: a mounted secret file ends in a
newline, and an HTTP library's "Illegal header value" message would echo it). Reading registers the
key; from then on `redact(text)` replaces it in every form a server, a library or our own code can
turn it into: raw, percent-encoded, `+`-for-space, base64 (standard and URL-safe, at any byte
alignment, so a key inside `Basic base64(user:key)` is found too), hex, JSON-escaped (`\\u...`,
`\\/`), HTML-escaped, with any letter case (servers upper-case echoes; hex and percent-encoding
come in both cases), and any prefix of such a form of at least `PREFIX_MIN` characters (a body cut
at an observation or log limit). Over-redaction (a harmless 8-character coincidence) is accepted.

What passes `redact`: Parquet rows (`toolweave.io.to_table`), log records (a record factory and a
`logging.Filter` on the root logger, installed when the first secret is registered), the HTTP
executor's observations and errors, the LLM client's errors (`LLMError`, retry logs).
"""
from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
PREFIX_MIN = 8  # shortest prefix of a secret's form that is redacted (shorter ones are too common)
MIN_SECRET = 4  # shorter values are not secrets worth the damage redacting them would do


def _base64_cores(data: bytes) -> list[str]:
    """The base64 characters that depend only on `data`, for each of the 3 byte alignments it can
    have inside a longer encoded string (standard and URL-safe alphabets)."""
    out = []
    n = len(data)
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode()
        start, end = -(-8 * k // 6), 8 * (k + n) // 6  # chars whose 6 bits all come from `data`
        core = enc[start:end]
        out += [core, core.translate(str.maketrans("+/", "-_"))]
    return out


def forms(secret: str) -> list[str]:
    """Every encoding of `secret` that `redact` looks for (letter case is ignored when matching)."""
    raw = secret.encode()
    json_ascii = json.dumps(secret)[1:-1]
    found = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), raw.hex(),
             json_ascii, json.dumps(secret, ensure_ascii=False)[1:-1], json_ascii.replace("/", "\\/"),
             secret.replace("/", "\\/"), html.escape(secret), *_base64_cores(raw)]
    return sorted({f for f in found if len(f) >= MIN_SECRET}, key=len, reverse=True)


def _match_len(text: str, at: int, form: str) -> int:
    """How many characters of `form` (any case) `text` holds from `at` on."""
    k, n = 0, min(len(form), len(text) - at)
    while k < n and (text[at + k] == form[k] or text[at + k].casefold() == form[k].casefold()):
        k += 1
    return k


class Redactor:
    """A set of secrets and the redaction of their forms (one per process: `DEFAULT`; tests and
    fuzzers make their own, so that thousands of random keys do not slow every later redaction)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: set[str] = set()
        self._forms: list[str] = []  # every form of every secret
        self.pattern: re.Pattern[str] | None = None

    def register(self, value: str | None) -> str:
        """Add a secret (stripped); returns the stripped value."""
        value = (value or "").strip()
        if len(value) < MIN_SECRET:
            return value
        with self._lock:
            if value not in self.secrets:
                self.secrets.add(value)
                self._forms = self._forms + forms(value)
                heads = sorted({f[:PREFIX_MIN] for f in self._forms}, key=len, reverse=True)
                self.pattern = re.compile("|".join(map(re.escape, heads)), re.IGNORECASE)
        return value

    def redact(self, text: Any) -> Any:
        """`text` with every secret (any form above, or a prefix of one) replaced by ***.
        Non-strings come back unchanged."""
        pattern, all_forms = self.pattern, self._forms
        if pattern is None or not isinstance(text, str) or not text:
            return text
        spans: list[tuple[int, int]] = []
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            at = m.start()
            best = max(_match_len(text, at, f) for f in all_forms)
            best = best if best >= min(PREFIX_MIN, len(text) - at) else len(m.group(0))
            spans.append((at, at + best))
            pos = at + max(best, 1)
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], MASK]
            last = end
        out.append(text[last:])
        return "".join(out)

    def redact_obj(self, obj: Any) -> Any:
        """`redact` applied to every string inside dicts / lists / tuples (keys included)."""
        if self.pattern is None:
            return obj
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.redact_obj(v) for v in obj)
        return obj


DEFAULT = Redactor()


def register(value: str | None) -> str:
    """Add a secret to this process's redactor (stripped); installs log redaction on first use."""
    value = DEFAULT.register(value)
    if DEFAULT.pattern is not None:
        install_logging()
    return value


def read_secret(env_name: str) -> str:
    """The key in env var `env_name`, else in the file named by `{env_name}_FILE` (Docker/Kubernetes
    secrets), stripped and registered; "" when neither is set."""
    value = os.environ.get(env_name)
    if value is None and os.environ.get(f"{env_name}_FILE"):
        path = Path(os.environ[f"{env_name}_FILE"]).expanduser()
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the secret file {path} named by {env_name}_FILE: "
                             f"{type(e).__name__}") from None
    return register(value)


def registered() -> int:
    return len(DEFAULT.secrets)


def redact(text: Any) -> Any:
    """This process's secrets redacted from `text` (see Redactor.redact)."""
    return DEFAULT.redact(text)


def redact_obj(obj: Any) -> Any:
    return DEFAULT.redact_obj(obj)


# --- logs --------------------------------------------------------------------------------------

def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if DEFAULT.pattern is None or getattr(record, "_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it for logging to report, as it would
        return record
    record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._redacted = True
    return record


class RedactingFilter(logging.Filter):
    """Redacts a record's message, exception and stack text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_FILTER = RedactingFilter()
_installed = False


def install_logging() -> None:
    """Redact every log record of this process: a record factory (records of every logger, before
    any handler sees them) and the filter on the root logger and its handlers (records made by
    a factory someone installs after us). Idempotent."""
    global _installed
    root = logging.getLogger()
    for target in (root, *root.handlers):
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        return _redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
