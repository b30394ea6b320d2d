"""Driver stages get clients whose engine starts on the first request: a rerun with nothing left to
judge starts no engine, and concurrent first requests start it once."""
import asyncio

from toolweave.config import RunConfig
from toolweave.stages.clients import lazy_clients


def test_engine_is_resolved_once_on_the_first_request(scripted_server):
    srv = scripted_server(handler=lambda body: "hello")
    cfg = RunConfig(llm={"endpoints": {"judge": {"base_url": "http://127.0.0.1:9/v1", "model": "hosted"}}})
    calls = []

    def resolve():
        calls.append(1)
        return srv.base_url

    clients = lazy_clients(cfg, resolve)
    assert calls == [] and clients["assistant"].model == cfg.llm.embedded.served_name
    assert clients["judge"].model == "hosted"  # a role with its own endpoint keeps it

    async def ask():
        return await asyncio.gather(*(clients[r].chat([{"role": "user", "content": "hi"}])
                                      for r in ("assistant", "executor", "default")))

    replies = asyncio.run(ask())
    assert [r.content for r in replies] == ["hello"] * 3 and calls == [1]
    assert {b["model"] for b in srv.requests} == {cfg.llm.embedded.served_name}
