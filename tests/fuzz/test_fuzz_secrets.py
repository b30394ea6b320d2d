"""Random canary keys, turned by random encodings and splits into what a careless server, library or
worker may write, pushed through every sink (Parquet rows, a log record, LLMError, the terminal, the
export JSONL, the summary writer): no sink output holds a fragment of FRAGMENT_MIN (8) characters of
the key that an attacker can recover by decoding it (the oracle below decodes; it does not reuse the
redactor's forms)."""
import base64
import html
import io as stdio
import json
import logging
import re
import string
import textwrap
import time
from urllib.parse import quote, quote_plus, unquote_plus

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings, strategies as st
from rich.console import Console

from toolweave import secrets
from toolweave.curation.export import write_jsonl
from toolweave.io import to_table
from toolweave.llm.types import LLMError
from toolweave.schemas import Reject
from toolweave.stages.display import RedactingFile
from toolweave.stages.lifecycle import write_summary_file

from .conftest import report

EXAMPLES = 200
KEY_ALPHABET = string.ascii_letters + string.digits + "-_+/=.~"
FRAGMENT = secrets.FRAGMENT_MIN


def _b64(text: str, prefix: str = "", urlsafe: bool = False) -> str:
    enc = base64.b64encode((prefix + text).encode()).decode()
    return enc.translate(str.maketrans("+/", "-_")) if urlsafe else enc


# one encoding step each: (name, function of (text, rng draw)) -- the list the module docstring promises
ENCODINGS = {
    "raw": lambda s, p: s,
    "reversed": lambda s, p: s[::-1],
    "percent": lambda s, p: quote(s, safe=""),
    "percent x2": lambda s, p: quote(quote(s, safe=""), safe=""),
    "percent x3": lambda s, p: quote(quote(quote(s, safe=""), safe=""), safe=""),
    "plus": lambda s, p: quote_plus(s),
    "hex": lambda s, p: s.encode().hex(),
    "HEX": lambda s, p: s.encode().hex().upper(),
    "base64": lambda s, p: _b64(s, p),
    "base64 urlsafe": lambda s, p: _b64(s, p, urlsafe=True),
    "base64 of base64": lambda s, p: _b64(_b64(s, p), p[:1]),
    "base64 wrapped 76": lambda s, p: base64.encodebytes((p + s).encode()).decode(),
    "base64 wrapped 64": lambda s, p: "\n".join(textwrap.wrap(_b64(s, p), 64)),
    "base64 in a query": lambda s, p: quote(_b64(s, p), safe=""),
    "json": lambda s, p: json.dumps(s)[1:-1].replace("/", "\\/"),
    "unicode escapes": lambda s, p: "".join(f"\\u{ord(c):04x}" for c in s),
    "python bytes": lambda s, p: "".join(f"\\x{b:02x}" for b in s.encode()),
    "html": lambda s, p: html.escape(s),
    "html entities": lambda s, p: "".join(f"&#{ord(c)};" for c in s),
    "html hex entities": lambda s, p: "".join(f"&#x{ord(c):x};" for c in s),
}
CASES = {"as is": str, "upper": str.upper, "lower": str.lower, "swapcase": str.swapcase}


@st.composite
def leaks(draw) -> tuple[str, str, str]:
    """(key, how it was leaked, the leaked text)."""
    key = draw(st.text(KEY_ALPHABET, min_size=16, max_size=64))
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    prefix = draw(st.sampled_from(["", "u:", "ab:"]))  # base64 at each byte alignment (Basic user:key)
    case = draw(st.sampled_from(sorted(CASES)))
    split = draw(st.sampled_from(["whole", "suffix", "two fields", "line breaks", "cut"]))
    encode = ENCODINGS[encoding]
    if split == "suffix":  # "key ending ...": an echo of the key's last characters
        text = "key ending " + encode(key[-draw(st.integers(FRAGMENT, len(key))):], prefix)
    elif split == "two fields":
        at = draw(st.integers(1, len(key) - 1))
        text = json.dumps({"a": encode(key[:at], prefix), "b": encode(key[at:], prefix)})
    elif split == "line breaks":  # wrapped by a terminal, a log formatter or a mailer, at random places
        text = encode(key, prefix)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(["\n", "\r\n", "\\n"])) + text[at:]
    elif split == "cut":  # a body cut at a limit
        text = encode(key, prefix)
        text = text[:draw(st.integers(FRAGMENT, len(text)))]
    else:
        text = encode(key, prefix)
    context = draw(st.sampled_from(["", "error: ", "Authorization: Bearer ", "https://api.example/x?key="]))
    return key, f"{encoding} / {case} / {split}", CASES[case](context + text + " (end)")


# --- the oracle: decode what a sink wrote, look for the key ------------------------------------

_BREAKS = re.compile(r"\r|\n|\\[rn]")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\/")


def _unquote_all(text: str) -> str:
    for _ in range(5):
        text, before = unquote_plus(text), text
        if text == before:
            break
    return text


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)) if m.group(0) != "\\/" else "/", text)


def _from_hex(text: str) -> str:
    runs = re.findall(r"[0-9a-fA-F]{4,}", _BREAKS.sub("", text))
    return "|".join(bytes.fromhex(r[o:][:len(r[o:]) // 2 * 2]).decode("latin-1") for r in runs for o in (0, 1))


def _from_base64(text: str) -> str:
    runs = re.findall(r"[A-Za-z0-9+/_-]{8,}", _BREAKS.sub("", text))  # shorter: under 6 bytes
    out = []
    for run in runs:
        run = run.translate(str.maketrans("-_", "+/"))
        for o in range(4):
            chunk = run[o:][:len(run[o:]) // 4 * 4]
            out.append(base64.b64decode(chunk).decode("latin-1"))
    return "|".join(out)


DECODERS = (lambda t: _BREAKS.sub("", t), _unquote_all, html.unescape, _unescape, lambda t: t[::-1],
            _from_hex, _from_base64)


def recoverable(written: str, key: str) -> list[str]:
    """The key's fragments of FRAGMENT characters (any case) found in `written` or in what one or
    two decoding steps make of it."""
    grams = {key[i:i + FRAGMENT].lower() for i in range(len(key) - FRAGMENT + 1)}
    views, frontier = {written}, [written]
    for _ in range(2):
        frontier = [d(v) for v in frontier for d in DECODERS]
        frontier = [v for v in frontier if v not in views and not views.add(v)]
    lowered = [v.lower() for v in views]
    return sorted({g for v in lowered for g in grams if g in v})


def test_the_oracle_recovers_every_leak_unredacted():
    """Without redaction every encoding, split and case the generator makes is recoverable (so the
    property below can fail)."""
    key = "sk-Zq8+xLm4/P9wR2tYv=Hk7Jd0"
    for name, encode in ENCODINGS.items():
        for prefix in ("", "u:", "ab:"):
            text = encode(key, prefix)
            assert recoverable(text, key), (name, prefix)
            assert recoverable(text.upper() if name in ("raw", "hex", "percent") else text, key), name
    assert recoverable(json.dumps({"a": key[:9], "b": key[9:]}), key)
    assert not recoverable("key ending " + key[-7:], key)  # below the fragment length: not a leak


# --- the sinks ----------------------------------------------------------------------------------

def _through_sinks(payload: str, tmp_path) -> dict[str, str]:
    out: dict[str, str] = {}
    table = to_table([Reject(id="r1", stage="fuzz", reason=payload, record=json.dumps({"k": payload}))], Reject)
    buf = stdio.BytesIO()
    pq.write_table(table, buf, compression="none")
    out["parquet bytes"] = buf.getvalue().decode("latin-1")
    out["parquet rows"] = json.dumps(table.to_pylist(), ensure_ascii=False)
    stream = stdio.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("toolweave.fuzz.secrets")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("record %s failed: %s", "r1", payload)
    finally:
        log.removeHandler(handler)
    out["log"] = stream.getvalue()
    err = LLMError(f"endpoint said: {payload}", endpoint="http://127.0.0.1:1/v1", attempts=1, cause=payload)
    out["LLMError"] = f"{err} | {err!r} | {err.cause}"
    terminal = stdio.StringIO()
    Console(file=RedactingFile(terminal), width=60, color_system=None).print(
        f"  solve: record 'r1' failed: {payload}", markup=False, highlight=False)
    out["terminal"] = terminal.getvalue()
    write_jsonl([{"messages": [{"role": "tool", "content": payload}]}], tmp_path / "export.jsonl")
    out["export"] = (tmp_path / "export.jsonl").read_text(encoding="utf-8")
    write_summary_file(tmp_path / "summary.json", {"notes": [payload]})
    out["summary"] = (tmp_path / "summary.json").read_text(encoding="utf-8")
    return out


def test_no_sink_holds_a_recoverable_fragment_of_a_random_canary(tmp_path):
    seen: dict[str, int] = {}
    leaked: list[tuple] = []
    real_leaks: list[bool] = []  # whether the oracle recovers the key from the unredacted payload

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(leaks())
    def check(leak):
        key, how, payload = leak
        seen[how.split(" / ")[0]] = seen.get(how.split(" / ")[0], 0) + 1
        real_leaks.append(bool(recoverable(payload, key)))
        with secrets.isolated():
            secrets.register(key)
            written = _through_sinks(payload, tmp_path)
        found = {sink: frags for sink, text in written.items() if (frags := recoverable(text, key))}
        if found:
            leaked.append((key, how, payload, found))
        assert not found, (key, how, payload, found)

    start = time.monotonic()
    check()
    report("secrets", canaries=EXAMPLES, recoverable_unredacted=sum(real_leaks), encodings=len(seen), sinks=8,
           leaks=len(leaked), seconds=round(time.monotonic() - start, 1))
    assert len(seen) == len(ENCODINGS)  # every encoding was drawn
    assert sum(real_leaks) > EXAMPLES // 2  # most payloads are real leaks (the rest: case-mangled or short)
