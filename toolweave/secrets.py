"""The one secret registry of a process and the one place secrets are taken out of text: `redact`.

Sources. Keys are read through `read_secret(env_name)` (whitespace stripped: a mounted secret file
ends in a newline, and an HTTP library's "Illegal header value" message would echo it), which
registers them: LLM endpoint keys (`api_key_env`), the HTTP executor's `auth_env`, an MCP server's
`env_from` values, the Hub token (`dataset.token_env`, `HF_TOKEN`), the bucket's
`AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` (registered when a path in an object store is used)
and every env var a config lists in `secret_env`. `register_config(cfg)` registers all of a run
config's at once (config load, and each worker process: a Ray actor has its own registry).

What is redacted. Any fragment (substring) of at least `FRAGMENT_MIN` = 8 characters of any of these
forms of a secret, in any letter case, is replaced by `***` (a secret shorter than 8 characters is
redacted where one of its forms occurs whole):
  raw and reversed; percent-encoded once, twice and three times (`/` kept or not, `+` for space);
  hex; base64, standard and URL-safe, at each of the 3 byte alignments it can have inside a longer
  encoded string (so `Basic base64(user:key)` is found), base64 of that base64, and its
  percent-encoding (a base64 key in a query string); JSON escapes (`\\uXXXX` of non-ASCII or of every
  character, `\\/`), Python `\\xHH` bytes; HTML (`&amp;`..., `&#NN;` and `&#xHH;` of every character).
A form broken by line breaks (base64 wrapped at 64 or 76 columns, a JSON-escaped `\\n`) is found
whole: the text is also scanned with its line breaks taken out. So a key split across two fields,
an echo of its ending ("key ending ..."), the second line of wrapped base64, a body cut at a limit
all lose every run of 8 characters that matches. What survives: pieces shorter than 8 characters
(at most 7 characters of the raw key, 5 bytes of it through base64), encodings outside the list
above (base32, rot13, gzip, encryption) and chains of them beyond the ones listed.
Over-redaction (a harmless 8-character coincidence with a key) is accepted.

How. Every 8-gram of every form, case-folded, is indexed (a set, and the sorted 64-bit rolling
hashes of the grams); a text is hashed at every position in one vectorised pass, the positions
whose hash is indexed are confirmed against the set, and the union of the matched 8-grams is masked.
Linear in the text: about 60 ms a megabyte on a busy 2-core machine.

Sinks that pass `redact`: Parquet rows (`toolweave.io.to_table`), log records (a record factory and a
`logging.Filter` on the root logger, installed when the first secret is registered), the terminal
(`toolweave.stages.display.console`), the HTTP and MCP executors' observations and errors, the LLM
client's errors (`LLMError`, retry logs), run summaries, exports (JSONL, ToolBench, ToolAlpaca), the
dataset card, the evaluation report and the front page.
"""
from __future__ import annotations

import base64
import contextlib
import html
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np

from toolweave import safe_read

MASK = "***"
FRAGMENT_MIN = 8  # shortest fragment of a secret's form that is redacted (shorter ones are too common)
MIN_SECRET = 4  # shorter values are not secrets worth the damage redacting them would do
_PRIME = np.uint32(1_000_003)
_TABLE_BITS = 22  # a bit table of the grams' hashes: a text position is looked up in one gather
_TABLE_MASK = np.uint32((1 << _TABLE_BITS) - 1)
_VECTOR_FROM = 512  # texts at least this long are hashed with numpy (below: a Python loop is faster)
SECRET_FILE_MAX_BYTES = 64 * 1024  # a key, a token or a certificate; not a data file
SECRET_FILE_TIMEOUT_S = 10.0
_BREAKS = re.compile(r"\r|\n|\\[rn]")  # line breaks, raw or JSON-escaped, that may split a form


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


def _percent_chain(text: str) -> list[str]:
    """`text` percent-encoded once, twice and three times (each with and without `/` kept), and
    `+`-for-space once and twice."""
    out, strict, slash = [], text, text
    for _ in range(3):
        strict, slash = quote(strict, safe=""), quote(slash)
        out += [strict, slash]
    plus = quote_plus(text)
    return [*out, plus, quote_plus(plus)]


def forms(secret: str) -> list[str]:
    """Every encoding of `secret` that `redact` looks for (letter case is ignored when matching)."""
    raw = secret.encode()
    json_ascii = json.dumps(secret)[1:-1]
    utf16 = secret.encode("utf-16-be")
    cores = _base64_cores(raw)
    found = [secret, secret[::-1], *_percent_chain(secret), raw.hex(),
             json_ascii, json.dumps(secret, ensure_ascii=False)[1:-1], json_ascii.replace("/", "\\/"),
             secret.replace("/", "\\/"),
             "".join(f"\\u{utf16[i]:02x}{utf16[i + 1]:02x}" for i in range(0, len(utf16), 2)),
             "".join(f"\\x{b:02x}" for b in raw),
             html.escape(secret), "".join(f"&#{ord(c)};" for c in secret),
             "".join(f"&#x{ord(c):x};" for c in secret),
             *cores]
    for core in cores:
        found += _base64_cores(core.encode())  # base64 of base64
        found.append(quote(core, safe=""))  # base64 in a query string
    return sorted({f for f in found if len(f) >= MIN_SECRET}, key=len, reverse=True)


def _casefold_same_length(text: str) -> str:
    """`text` lower-cased, one character for one (a few characters lower to two: kept as they are)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(lc := c.lower()) != 1 else lc for c in text)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _gram_hashes(text: str) -> np.ndarray:
    """The rolling hash of every FRAGMENT_MIN-gram of `text` (position i: text[i:i+FRAGMENT_MIN]),
    modulo 2**32 (a hit is confirmed against the grams themselves)."""
    codes = _codes(text)
    count = len(codes) - FRAGMENT_MIN + 1
    hashes = np.zeros(max(count, 0), dtype=np.uint32)
    if count > 0:
        for j in range(FRAGMENT_MIN):  # in place: no temporary arrays of the text's size
            hashes *= _PRIME
            hashes += codes[j:j + count]
    return hashes


def _spans(starts: list[int], offset_map: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Matched gram starts -> merged [start, end) spans (mapped back through `offset_map`)."""
    spans: list[tuple[int, int]] = []
    for s in starts:
        a, b = s, s + FRAGMENT_MIN
        if offset_map is not None:
            a, b = int(offset_map[a]), int(offset_map[b - 1]) + 1
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


class _Index:
    """What one set of secrets is matched with: the grams of their long forms (line breaks taken
    out, as the text is scanned without them), and the short forms."""

    def __init__(self, all_forms: list[str]):
        self.grams: set[str] = set()
        short: set[str] = set()
        table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        for form in all_forms:
            for low in {_casefold_same_length(form), _BREAKS.sub("", _casefold_same_length(form))}:
                if len(low) < FRAGMENT_MIN:
                    short.add(low)
                    continue
                self.grams.update(low[i:i + FRAGMENT_MIN] for i in range(len(low) - FRAGMENT_MIN + 1))
                table[_gram_hashes(low) & _TABLE_MASK] = True
        self.table = table
        self.short = re.compile("|".join(map(re.escape, sorted(short, key=len, reverse=True)))) if short else None

    def starts(self, low: str) -> list[int]:
        """Positions where an indexed gram starts in the case-folded text `low`."""
        count = len(low) - FRAGMENT_MIN + 1
        if count <= 0 or not self.grams:
            return []
        grams = self.grams
        if count < _VECTOR_FROM:
            return [i for i in range(count) if low[i:i + FRAGMENT_MIN] in grams]
        hashes = _gram_hashes(low)
        hashes &= _TABLE_MASK
        candidates = np.flatnonzero(self.table[hashes])
        return [i for i in candidates.tolist() if low[i:i + FRAGMENT_MIN] in grams]  # collisions out

    def spans(self, text: str) -> list[tuple[int, int]]:
        low = _casefold_same_length(text)
        found: list[tuple[int, int]] = []
        if self.short is not None:
            found += [m.span() for m in self.short.finditer(low)]
        if _BREAKS.search(low) is None:
            return found + _spans(self.starts(low))
        # a form may be wrapped over lines: scan the text without its line breaks, map spans back
        keep = np.ones(len(low), dtype=bool)
        for m in _BREAKS.finditer(low):
            keep[m.start():m.end()] = False
        offsets = np.flatnonzero(keep)
        joined = _codes(low)[keep].tobytes().decode("utf-32-le", "surrogatepass")
        return found + _spans(self.starts(joined), offsets)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each union of overlapping or touching spans replaced by one MASK."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], MASK]
        last = end
    out.append(text[last:])
    return "".join(out)


class Redactor:
    """A set of secrets and the redaction of their forms (one per process: `DEFAULT`; tests and
    fuzzers make their own, or use `isolated()`, so that thousands of random keys do not slow every
    later redaction)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: set[str] = set()
        self._forms: list[str] = []  # every form of every secret
        self._index: _Index | None = None

    @property
    def pattern(self) -> _Index | None:  # kept for callers that test "is anything registered"
        return self._index

    def register(self, value: str | None) -> str:
        """Add a secret (stripped); returns the stripped value."""
        value = (value or "").strip()
        if len(value) < MIN_SECRET or value in self.secrets:
            return value
        with self._lock:
            if value not in self.secrets:
                all_forms = self._forms + forms(value)
                index = _Index(all_forms)
                self._forms, self._index = all_forms, index
                self.secrets = self.secrets | {value}
        return value

    def redact(self, text: Any) -> Any:
        """`text` with every secret (any fragment of at least FRAGMENT_MIN characters of any form
        above, in any case) replaced by ***. Non-strings come back unchanged."""
        index = self._index
        if index is None or not isinstance(text, str) or len(text) < MIN_SECRET:
            return text
        return _mask(text, index.spans(text))

    def redact_obj(self, obj: Any) -> Any:
        """`redact` applied to every string inside dicts / lists / tuples (keys included)."""
        if self._index is None:
            return obj
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.redact_obj(v) for v in obj)
        return obj

    @contextlib.contextmanager
    def isolated(self) -> Iterator[Redactor]:
        """Secrets registered inside the block are forgotten after it (tests, fuzzers)."""
        with self._lock:
            saved = (self.secrets, self._forms, self._index)
        try:
            yield self
        finally:
            with self._lock:
                self.secrets, self._forms, self._index = saved


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
        try:  # a regular file only (a FIFO would block), bounded in size and time
            value = safe_read.read_text(path, max_bytes=SECRET_FILE_MAX_BYTES, timeout_s=SECRET_FILE_TIMEOUT_S)
        except (OSError, UnicodeDecodeError) as e:
            # safe_read's reasons are its own words; other errors may quote the file's bytes
            why = e.strerror if isinstance(e, safe_read.UnreadableFile) else type(e).__name__
            raise ValueError(f"cannot read the secret file {path} named by {env_name}_FILE: {why}") from None
    return register(value)


HUB_TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # read by huggingface_hub itself when set
BUCKET_SECRET_ENVS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # read by pyarrow / boto


def config_secret_envs(cfg: Any) -> list[str]:
    """The env vars a run config names as holding secrets: endpoint keys, the HTTP executor's
    `auth_env`, MCP servers' `env_from`, the Hub token (`dataset.token_env`), `secret_env`; and the
    Hub's and buckets' own (set, they are secrets whatever the config says)."""
    names: list[str] = [*HUB_TOKEN_ENVS, *BUCKET_SECRET_ENVS, *getattr(cfg, "secret_env", [])]
    llm = getattr(cfg, "llm", None)
    names += [e.api_key_env for e in getattr(llm, "endpoints", {}).values() if getattr(e, "api_key_env", None)]
    executor = getattr(cfg, "executor", None)
    names += list(getattr(executor, "auth_env", {}).values())
    for server in getattr(getattr(executor, "mcp", None), "servers", {}).values():
        names += list(server.env_from)
    dataset = getattr(cfg, "dataset", None)
    if getattr(dataset, "token_env", None):
        names.append(dataset.token_env)
    return list(dict.fromkeys(names))


def register_config(cfg: Any) -> int:
    """Register every secret `cfg` names that this process's environment holds; returns how many
    secrets the registry holds. A missing or unreadable one is left to the code that needs it."""
    for name in config_secret_envs(cfg):
        with contextlib.suppress(ValueError):
            read_secret(name)
    return registered()


def registered() -> int:
    return len(DEFAULT.secrets)


def redact(text: Any) -> Any:
    """This process's secrets redacted from `text` (see Redactor.redact)."""
    return DEFAULT.redact(text)


def redact_obj(obj: Any) -> Any:
    return DEFAULT.redact_obj(obj)


def isolated() -> contextlib.AbstractContextManager[Redactor]:
    """This process's registry, with what is registered inside the block forgotten after it."""
    return DEFAULT.isolated()


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
