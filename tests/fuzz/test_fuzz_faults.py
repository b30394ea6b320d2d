"""HTTP faults against the executor, secrets canaries in random forms, concurrent opens of the tool
cache (with corruption): 0 crashes, 0 hangs, 0 leaks."""
import asyncio
import base64
import json
import random
import string
import time
from urllib.parse import quote

import pytest

from toolweave.executors import HttpExecutor
from toolweave.schemas import Function, Tool
from toolweave.secrets import Redactor
from toolweave.testing.hostile_server import HostileServer, leak_forms
from toolweave.testing.processes import concurrent_cache_opens

from .conftest import report

pytestmark = pytest.mark.slow
KEY = "sk-fuzz/Qw3+Er5=Ty7_Ui9-Op1.As2~Df4"
PATHS = ["/echo/{id}", "/trickle", "/bomb", "/huge", "/drop", "/badgzip", "/brotli", "/shortbody", "/charset",
         "/status/500", "/status/429", "/status/204", "/status/301", "/x/{id}", "/echo/{id}/more"]
VALUES = ["../../admin", "..", ".", "a b?c#d", "%2e%2e%2f", "é\u4e2d", "\ud800", "x" * 5000, "a\r\nInjected: 1",
          "", 0, -1, 10 ** 30, 1.5, True, None, [1, "a"], {"k": {"n": [1]}}, "/etc/passwd", "http://evil/"]


def test_http_faults_never_crash_hang_or_leak(monkeypatch):
    monkeypatch.setenv("FUZZ_KEY", KEY + "\n")
    rng = random.Random(7)
    calls, trickles = 160, 0
    crashes, hangs, leaks = [], [], []
    with HostileServer() as srv:
        ex = HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], timeout_s=1.0, rate_limit_per_s=0,
                          max_body_bytes=300_000, auth_env={"t": "FUZZ_KEY"})
        schemes = [None, {"k": {"type": "apiKey", "in": "query", "name": "key"}},
                   {"k": {"type": "apiKey", "in": "header", "name": "X-Key"}}]

        async def one(i: int):
            nonlocal trickles
            path = rng.choice(PATHS)
            if path == "/trickle":
                trickles += 1
            where = rng.choice(["path", "query", "header", "cookie", "body", None])
            props = {"id": {"type": "string", "x-in": "path"}, "p": {"x-in": where} if where else {}}
            fn = Function(name="f", description="f", method=rng.choice(["GET", "POST", "DELETE"]), path=path,
                          parameters={"type": "object", "properties": props})
            scheme = rng.choice(schemes)
            tool = Tool(id="t", name="t", description="t", base_url=srv.url, functions=[fn],
                        openapi={"components": {"securitySchemes": scheme}} if scheme else None)
            args = {"id": rng.choice(VALUES), "p": rng.choice(VALUES)}
            start = time.monotonic()
            try:
                obs = await ex.execute(tool, fn, args)
            except Exception as e:  # a crash: collected with its call
                crashes.append((path, repr(args)[:80], repr(e)[:200]))
                return
            if time.monotonic() - start > ex.timeout_s + 1.5:
                hangs.append((path, round(time.monotonic() - start, 1)))
            text = obs.to_json() + (obs.error or "")
            if any(f.lower() in text.lower() for f in leak_forms(KEY)):
                leaks.append((path, text[:200]))

        async def main():
            for start in range(0, calls, 16):  # 16 at a time, as episodes share an executor
                await asyncio.gather(*(one(i) for i in range(start, min(calls, start + 16))))

        asyncio.run(main())
    report("http faults", calls=calls, trickling=trickles, crashes=len(crashes), hangs=len(hangs), leaks=len(leaks))
    assert crashes == [] and hangs == [] and leaks == []


def _random_key(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "/+=_-.~%"
    return rng.choice(["sk-", "ghp_", "", "AKIA"]) + "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 60)))


def _encode(rng: random.Random, key: str) -> str:
    form = rng.choice([
        key, key.upper(), key.lower(), quote(key, safe=""), quote(key), key.encode().hex(), key.encode().hex().upper(),
        base64.b64encode(key.encode()).decode(), base64.urlsafe_b64encode(key.encode()).decode(),
        base64.b64encode(f"{rng.choice(['u', 'us', 'use'])}:{key}".encode()).decode(),
        json.dumps(key)[1:-1].replace("/", "\\/"), json.dumps({"k": key})])
    if rng.random() < 0.3:  # cut at an observation limit, keeping at least 12 characters
        form = form[: rng.randint(min(12, len(form)), len(form))]
    return form


def test_secret_canaries_are_redacted_in_every_form():
    rng = random.Random(8)
    cases, leaks = 3000, []
    filler = string.ascii_letters + string.digits + " \n\t{}[]\":,=&?/\\%+"
    for _ in range(cases):
        key = _random_key(rng)
        redactor = Redactor()
        redactor.register(rng.choice(["", " ", "\n", "\r\n"]) + key + rng.choice(["", "\n", " \n"]))
        pad = lambda: "".join(rng.choice(filler) for _ in range(rng.randint(0, 40)))  # noqa: E731
        text = pad() + _encode(rng, key) + pad() + (_encode(rng, key) if rng.random() < 0.3 else "")
        out = redactor.redact(text)
        low = out.lower()
        found = [f for f in leak_forms(key) if f.lower() in low]
        if found:
            leaks.append((key, text[:120], found))
    report("secrets", canaries=cases, leaks=len(leaks))
    assert leaks == []


def _corrupt(rng: random.Random, path) -> str:
    if not path.exists() or rng.random() < 0.3:
        return "new file"
    data = bytearray(path.read_bytes())
    kind = rng.randrange(3)
    if kind == 0:
        path.write_bytes(bytes(data[: rng.randint(0, 100)]))
        return "truncated"
    if kind == 1:
        for i in range(0, 16):
            data[i] = rng.randrange(256)
        path.write_bytes(bytes(data))
        return "header overwritten"
    path.write_bytes(b"\0" * rng.randint(1, 5000))
    return "zeros"


def test_concurrent_cache_opens_with_corruption_never_fail(tmp_path):
    rng = random.Random(9)
    rounds, procs_per_round = 10, 10
    errors, disagreements = [], 0
    path = tmp_path / "cache.sqlite"
    for r in range(rounds):
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"cache.sqlite{suffix}").unlink(missing_ok=True)  # as after a crash and a copy
        _corrupt(rng, path) if r % 2 else path.unlink(missing_ok=True)
        results = concurrent_cache_opens(path, processes=procs_per_round, keys=10)
        errors += [res for kind, res in results if kind != "ok"]
        disagreements += len({res for kind, res in results if kind == "ok"}) > 1
    report("cache", opens=rounds * procs_per_round, errors=len(errors), disagreements=disagreements,
           moved_aside=len(list(tmp_path.glob("cache.sqlite.corrupt-*"))))
    assert errors == [] and disagreements == 0
