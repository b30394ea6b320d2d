"""Accountant: counts per stage / episode / model / role, prices, thread safety, the table."""
from __future__ import annotations

import asyncio
import io
import threading

from rich.console import Console

from toolweave.config import EndpointConfig
from toolweave.llm.accounting import Accountant
from toolweave.llm.client import LLMClient
from toolweave.llm.types import CallTag, Usage


def test_counts_per_stage_episode_model_and_cost():
    acc = Accountant(prices={"big": {"prompt": 2.0, "completion": 10.0}})
    acc.record(Usage(1000, 200, 1), model="big", tag=CallTag(stage="solve", episode="e1", role="assistant"))
    acc.record(Usage(500, 100, 1), model="big", tag=CallTag(stage="evaluate", episode="e1", role="judge"))
    acc.record(Usage(300, 30, 1), model="small", tag=CallTag(stage="solve", episode="e2"))
    s = acc.summary()
    assert s["total"]["calls"] == 3 and s["total"]["prompt_tokens"] == 1800 and s["total"]["completion_tokens"] == 330
    assert s["by_stage"]["solve"]["calls"] == 2 and s["by_stage"]["evaluate"]["prompt_tokens"] == 500
    assert s["by_role"]["judge"]["calls"] == 1 and s["by_role"]["default"]["calls"] == 1
    # 1500 prompt tokens at $2/M + 300 completion at $10/M
    assert s["by_model"]["big"]["cost_usd"] == round(1500 * 2 / 1e6 + 300 * 10 / 1e6, 6)
    assert "cost_usd" not in s["by_model"]["small"]  # no price, no invented cost
    assert s["total"]["cost_usd"] == s["by_model"]["big"]["cost_usd"]
    assert acc.episode_usage("e1") == Usage(1500, 300, 2)
    assert acc.episode_usage("unknown") == Usage()
    assert acc.pop_episode("e2") == Usage(300, 30, 1) and acc.episode_usage("e2") == Usage()


def test_thread_safe_under_contention():
    acc = Accountant()

    def work(k: int):
        for _ in range(2000):
            acc.record(Usage(3, 1, 1), model="m", tag=CallTag(stage="s", episode=f"e{k % 2}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acc.total == Usage(24000, 8000, 8000)
    assert acc.episode_usage("e0").calls == acc.episode_usage("e1").calls == 4000


def test_rich_table_lists_models_and_stages():
    acc = Accountant(prices={"m": {"prompt": 1.0, "completion": 1.0}})
    acc.record(Usage(10, 5, 1), model="m", tag=CallTag(stage="simulate"))
    out = io.StringIO()
    acc.print_table(Console(file=out, width=120))
    text = out.getvalue()
    assert "LLM usage" in text and "simulate" in text
    total_row = next(line for line in text.splitlines() if "total" in line)
    assert "10" in total_row and "5" in total_row and "0.0000" in total_row  # 15 tokens at $1/M


def test_client_usage_lands_in_the_episode(scripted_server):
    srv = scripted_server(replies=["a", "bb", "ccc"])
    acc = Accountant()
    client = LLMClient(EndpointConfig(base_url=srv.base_url, model="m"), accountant=acc)

    async def episode():
        replies = []
        for _ in range(3):
            replies.append(await client.chat([{"role": "user", "content": "hi"}],
                                             tag=CallTag(stage="simulate", episode="ep-7")))
        return replies

    replies = asyncio.run(episode())
    expected = Usage()
    for r in replies:
        expected.add(r.usage)
    assert acc.episode_usage("ep-7") == expected and expected.calls == 3
    assert acc.summary()["by_model"]["m"]["calls"] == 3


def test_the_table_shows_hostile_model_names_escaped_on_its_default_console(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one row one line
    acc = Accountant()
    acc.record(Usage(10, 5, 1), model="m\x1b]0;pwned\x07[bold]x[/bold]\nforged", tag=CallTag(stage="solve"))
    acc.print_table()  # its own console: a SafeConsole
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if "\x1b" in line or "\x07" in line or line.startswith("forged")]
    [row] = [line for line in lines if "pwned" in line]
    assert "m\\x1b]0;pwned\\x07[bold]x[/bold]\\nforged" in row and "10" in row  # as written, markup too
