import asyncio
import json
import multiprocessing as mp
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest

from toolweave.config import ExecutorConfig
from toolweave.executors import (HttpExecutor, LLMSimulatedExecutor, MemoryResponseCache, SchemaMockExecutor,
                                 SqliteResponseCache, cache_key, example_arguments, make_executor,
                                 probe_functions)
from toolweave.llm.types import ChatReply, Usage
from toolweave.schemas import Function, Tool
from toolweave.testing.fake_llm import FakeChatModel
from toolweave.toolsets.importers import import_paths

DATA = Path(__file__).parents[2] / "data"


@pytest.fixture(scope="module")
def g1_tools():
    """Real ToolBench tools (G1 queries), with their documented parameters."""
    return import_paths([DATA / "stabletoolbench/solvable_queries/G1_instruction.json"]).tools


def weather_tool(**fn_extra) -> Tool:
    fn = Function(name="current", description="Current weather of a city", method="GET", path="/weather/{city}",
                  parameters={"type": "object", "properties": {"city": {"type": "string", "example": "Paris"},
                                                               "units": {"type": "string", "enum": ["c", "f"]}},
                              "required": ["city"]}, **fn_extra)
    return Tool(id="weather", name="Weather", description="Weather API", functions=[fn])


def run(coro):
    return asyncio.run(coro)


# --- LLM-simulated -----------------------------------------------------------------------------

def test_llm_executor_forces_json_and_caches_identical_bodies():
    llm = FakeChatModel(['{"status_code": 200, "body": {"temp": 21}}', '{"status_code": 200, "body": {"temp": 5}}'])
    tool = weather_tool(response_examples=['{"temp": 10, "sky": "clear"}'])
    ex = LLMSimulatedExecutor(llm, MemoryResponseCache())
    fn = tool.functions[0]
    a = run(ex.execute(tool, fn, {"city": "Paris", "units": "c"}))
    b = run(ex.execute(tool, fn, {"units": "c", "city": "Paris"}))  # same call, other key order
    assert a.body == b.body == '{"temp": 21}' and a.status_code == 200 and not a.cached and b.cached
    assert len(llm.requests) == 1
    req = llm.requests[0]
    assert req["json_schema"]["required"] == ["status_code", "body"]
    prompt = req["messages"][1]["content"]
    assert '{"temp": 10, "sky": "clear"}' in prompt and '"city":"Paris"' in prompt and "/weather/{city}" in prompt
    # an earlier response of the same function becomes an example for the next call
    run(ex.execute(tool, fn, {"city": "Oslo"}))
    assert '{"temp": 21}' in llm.requests[1]["messages"][1]["content"]


def test_llm_executor_garbage_and_timeout_are_error_observations():
    tool = weather_tool()
    ex = LLMSimulatedExecutor(FakeChatModel(["I am not an API"]), MemoryResponseCache())
    obs = run(ex.execute(tool, tool.functions[0], {"city": "X"}))
    assert obs.error and "unusable" in obs.error and not obs.ok
    assert run(ex.cache.get(cache_key(tool, tool.functions[0], {"city": "X"}))) is None  # not cached

    class Slow:
        async def chat(self, *a, **k):
            await asyncio.sleep(5)

    obs = run(LLMSimulatedExecutor(Slow(), timeout_s=0.05).execute(tool, tool.functions[0], {"city": "X"}))
    assert obs.status_code == 408 and obs.error.startswith("timeout")


def test_concurrent_episodes_see_the_first_written_body(tmp_path):
    """Many episodes simulate the same call at once with different LLM answers: all get one body."""
    tool = weather_tool()
    n = {"i": 0}

    class Racing:
        async def chat(self, *a, **k):
            n["i"] += 1
            i = n["i"]
            await asyncio.sleep(0.01 * (i % 3))
            return ChatReply({"role": "assistant", "content": json.dumps({"status_code": 200, "body": {"v": i}})},
                             "stop", Usage(1, 1, 1))

    async def main():
        ex = LLMSimulatedExecutor(Racing(), SqliteResponseCache(tmp_path / "c.sqlite"))
        return await asyncio.gather(*(ex.execute(tool, tool.functions[0], {"city": "Rome"}) for _ in range(12)))

    bodies = {o.body for o in run(main())}
    assert len(bodies) == 1


def _writer(path, i, q):
    cache = SqliteResponseCache(path)
    for k in range(50):
        cache.put_sync(f"k{k}", f"from-{i}")
    q.put([cache.get_sync(f"k{k}") for k in range(50)])


def test_sqlite_cache_first_write_wins_across_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    SqliteResponseCache(path)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, i, q)) for i in range(3)]
    for p in procs:
        p.start()
    seen = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert seen[0] == seen[1] == seen[2]  # every process reads the same winner for every key
    cache = SqliteResponseCache(path)
    assert len(cache) == 50
    assert cache.get_sync("journal") is None
    assert cache._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- schema mock -------------------------------------------------------------------------------

def test_mock_is_deterministic_and_follows_the_schema():
    schema = {"type": "object", "properties": {"temp": {"type": "number", "minimum": -30, "maximum": 40},
                                               "sky": {"type": "string", "enum": ["clear", "rain"]},
                                               "hours": {"type": "array", "items": {"type": "integer"}},
                                               "at": {"type": "string", "format": "date-time"}},
              "required": ["temp", "sky"]}
    tool = weather_tool(response_schema=schema)
    ex = SchemaMockExecutor()
    a = run(ex.execute(tool, tool.functions[0], {"city": "Paris"}))
    b = run(ex.execute(tool, tool.functions[0], {"city": "Paris"}))
    c = run(ex.execute(tool, tool.functions[0], {"city": "Lima"}))
    assert a.body == b.body and a.ok
    jsonschema.validate(json.loads(a.body), schema)
    jsonschema.validate(json.loads(c.body), schema)
    examples = weather_tool(response_examples=['{"a": 1}', '{"a": 2}'])
    bodies = {run(ex.execute(examples, examples.functions[0], {"city": c})).body for c in "abcdefgh"}
    assert bodies <= {'{"a": 1}', '{"a": 2}'}


def test_mock_on_real_toolbench_tools(g1_tools):
    ex = SchemaMockExecutor()
    for tool in g1_tools[:20]:
        for fn in tool.functions:
            obs = run(ex.execute(tool, fn, example_arguments(fn)))
            assert obs.ok and json.loads(obs.body) is not None
            if fn.response_schema:
                jsonschema.validate(json.loads(obs.body), fn.response_schema)


# --- real HTTP ---------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        _Handler.seen.append((self.path, dict(self.headers)))
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        # a careless server echoes the credentials: the executor must scrub them
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                           "key": self.headers.get("X-Key")}).encode()
        self.send_response(404 if "missing" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def loopback():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Handler.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_executor_calls_scrubs_secrets_and_blocks_other_hosts(loopback, monkeypatch):
    secret = "sk-very-secret-123"
    monkeypatch.setenv("WEATHER_KEY", secret)
    tool = weather_tool().model_copy(update={"base_url": loopback})
    fn = tool.functions[0]
    ex = HttpExecutor(allow_hosts=["127.0.0.1:*"], auth_env={"weather": "WEATHER_KEY"}, timeout_s=0.5,
                      rate_limit_per_s=1000)
    obs = run(ex.execute(tool, fn, {"city": "Paris", "units": "c"}))
    assert obs.ok and json.loads(obs.body)["path"] == "/weather/Paris?units=c"
    assert _Handler.seen[0][1]["Authorization"] == f"Bearer {secret}"  # the server got the key ...
    assert secret not in obs.to_json() and "***" in obs.body  # ... the observation never has it
    # a key that goes in a named header (OpenAPI apiKey scheme)
    keyed = tool.model_copy(update={"openapi": {"components": {"securitySchemes": {
        "k": {"type": "apiKey", "in": "header", "name": "X-Key"}}}}})
    obs = run(ex.execute(keyed, fn, {"city": "Oslo"}))
    assert _Handler.seen[-1][1]["X-Key"] == secret and secret not in obs.to_json()
    # errors and timeouts
    assert run(ex.execute(tool, fn, {"city": "missing"})).status_code == 404
    slow = tool.model_copy(update={"functions": [fn.model_copy(update={"path": "/slow"})]})
    obs = run(ex.execute(slow, slow.functions[0], {"city": "x"}))
    assert obs.status_code == 408 and obs.error.startswith("timeout")
    # another host: no call made
    n = len(_Handler.seen)
    other = tool.model_copy(update={"base_url": "http://example.com"})
    obs = run(ex.execute(other, fn, {"city": "Paris"}))
    assert obs.status_code == 0 and "allow_hosts" in obs.error and len(_Handler.seen) == n


def test_http_rate_limit(loopback):
    tool = weather_tool().model_copy(update={"base_url": loopback})
    ex = HttpExecutor(allow_hosts=["127.0.0.1:*"], rate_limit_per_s=20)

    async def main():
        t = time.monotonic()
        await asyncio.gather(*(ex.execute(tool, tool.functions[0], {"city": str(i)}) for i in range(5)))
        await ex.aclose()
        return time.monotonic() - t

    assert run(main()) >= 4 / 20 - 0.01


# --- factory and probing -----------------------------------------------------------------------

def test_make_executor(tmp_path):
    assert isinstance(make_executor(ExecutorConfig(kind="mock")), SchemaMockExecutor)
    assert isinstance(make_executor(ExecutorConfig(kind="http", allow_hosts=["x"])), HttpExecutor)
    ex = make_executor(ExecutorConfig(kind="llm", cache_path=str(tmp_path / "c.sqlite")), llm=FakeChatModel([]))
    assert isinstance(ex.cache, SqliteResponseCache)
    with pytest.raises(ValueError, match="needs a chat model"):
        make_executor(ExecutorConfig(kind="llm"))


def test_probe_marks_failing_functions(g1_tools):
    tool = g1_tools[0]
    broken = tool.functions[-1].name

    class Flaky:
        async def execute(self, t, fn, args):
            if fn.name == broken:
                raise ConnectionError("down")
            return await SchemaMockExecutor().execute(t, fn, args)

    results = run(probe_functions([tool], Flaky()))
    assert len(results) == len(tool.functions)
    bad = [r for r in results if not r.ok]
    assert [r.function for r in bad] == [broken] and "down" in bad[0].error
    fn = weather_tool().functions[0]
    assert example_arguments(fn) == {"city": "Paris", "units": "c"}  # example, then the enum's first value
    fn.parameters["properties"]["extra"] = {"type": "integer"}
    assert "extra" not in example_arguments(fn)  # optional without a documented value is left out
