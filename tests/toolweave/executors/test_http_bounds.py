"""The HTTP executor against a hostile loopback server: deadlines, body caps, allow-list ports,
path arguments that try to climb, arguments placed where their schema says."""
import asyncio
import json
import resource
import time

import pytest

from toolweave.executors import HttpExecutor
from toolweave.schemas import Function, Tool
from toolweave.testing.hostile_server import HostileServer


@pytest.fixture(scope="module")
def srv():
    with HostileServer() as s:
        yield s


def tool_at(url: str, path: str, method: str = "GET", props: dict | None = None) -> Tool:
    fn = Function(name="f", description="f", method=method, path=path,
                  parameters={"type": "object", "properties": props or {}})
    return Tool(id="t", name="t", description="t", base_url=url, functions=[fn])


def call(ex: HttpExecutor, tool: Tool, args: dict):
    return asyncio.run(ex.execute(tool, tool.functions[0], args))


def test_total_deadline_holds_against_a_trickling_server(srv):
    ex = HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], timeout_s=1.0, rate_limit_per_s=0)
    t = time.monotonic()
    obs = call(ex, tool_at(srv.url, "/trickle"), {})
    assert time.monotonic() - t < 2.0  # the server would take 10 s; every read is under 0.5 s
    assert obs.status_code == 408 and obs.error.startswith("timeout")


def test_gzip_bomb_and_endless_body_are_cut_at_the_cap(srv):
    ex = HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], timeout_s=20, rate_limit_per_s=0,
                      max_body_bytes=1_000_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in ("/bomb", "/huge"):
        obs = call(ex, tool_at(srv.url, path), {})
        assert obs.status_code == 200 and "over 1000000 bytes" in obs.error
        assert len(obs.body) <= 200_000
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"peak memory grew by {grown_mb:.0f} MB (the bomb inflates to 1 GB)"


def test_allow_list_ports(srv):
    tool = tool_at(srv.url, "/x")
    assert call(HttpExecutor(allow_hosts=["127.0.0.1"], rate_limit_per_s=0), tool, {}).error.endswith("call not made")
    assert call(HttpExecutor(allow_hosts=["127.0.0.1:1"], rate_limit_per_s=0), tool, {}).status_code == 0
    assert call(HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], rate_limit_per_s=0), tool, {}).ok
    assert call(HttpExecutor(allow_hosts=["127.0.0.1:*"], rate_limit_per_s=0), tool, {}).ok
    ex = HttpExecutor(allow_hosts=["api.example.com", "[::1]:8080"])
    assert ex.allowed("https://API.example.com/v1") and ex.allowed("http://api.example.com:80/")
    assert not ex.allowed("http://api.example.com:8080/") and not ex.allowed("ftp://api.example.com/")
    assert ex.allowed("http://[::1]:8080/x") and not ex.allowed("http://[::1]:8081/x")
    assert not ex.allowed("http://api.example.com:99999/")  # a port out of range is no crash
    with pytest.raises(ValueError, match="allow_hosts entry"):
        HttpExecutor(allow_hosts=["http://x/y"])


def test_path_arguments_cannot_climb(srv):
    ex = HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], rate_limit_per_s=0)
    tool = tool_at(srv.url, "/users/{id}/profile", props={"id": {"type": "string", "x-in": "path"}})
    for value, expected in (("../../admin", "/users/..%2F..%2Fadmin/profile"), ("..", "/users/%2E%2E/profile"),
                            ("a b?c#d", "/users/a%20b%3Fc%23d/profile"), (7, "/users/7/profile")):
        obs = call(ex, tool, {"id": value})
        assert json.loads(obs.body)["path"] == expected, value


def test_arguments_go_where_x_in_says(srv):
    ex = HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], rate_limit_per_s=0)
    props = {"X-Trace": {"type": "string", "x-in": "header"}, "q": {"type": "string", "x-in": "query"},
             "sid": {"type": "string", "x-in": "cookie"}, "name": {"type": "string", "x-in": "body"},
             "body_q": {"type": "string", "x-in": "body", "x-name": "q"}}
    obs = call(ex, tool_at(srv.url, "/items", "POST", props),
               {"X-Trace": "abc", "q": "find", "sid": "s 1", "name": "n", "body_q": "inner"})
    got = json.loads(obs.body)
    assert got["path"] == "/items?q=find" and got["headers"]["X-Trace"] == "abc"
    assert got["headers"]["Cookie"] == "sid=s%201"
    # a header value that cannot be sent is an error observation, not a crash
    bad = call(ex, tool_at(srv.url, "/items", "GET", props), {"X-Trace": "a\r\nInjected: 1"})
    assert bad.status_code == 0 and bad.error.startswith("request failed")
