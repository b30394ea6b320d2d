"""solve.tools: retrieved (and instructions without tools) solve with the trained retriever's top-k APIs."""
import asyncio

import pytest

import toolweave.search
from toolweave import io
from toolweave.config import RunConfig
from toolweave.retrieval import dense
from toolweave.retrieval.corpus import ApiDoc
from toolweave.schemas import Function, Instruction, Tool
from toolweave.stages.solve import SolveWorker
from toolweave.testing.fake_llm import FakeChatModel

TOOLS = [Tool(id=t, name=t, functions=[Function(name=f, parameters={"type": "object", "properties": {}})
                                       for f in fns]) for t, fns in (("maps", ["geocode", "route"]), ("weather", ["now"]))]


class Handed(Exception):
    """The solve core was reached (its arguments recorded)."""


class Ranked:
    docs = [ApiDoc("weather", "now", "weather now forecast"), ApiDoc("music", "lyrics", "song lyrics"),
            ApiDoc("maps", "route", "maps route")]

    def top_k(self, query, k=5):
        return [("maps", "route", 0.9), ("weather", "now", 0.5)][:k]


def solved(tmp_path, monkeypatch, tools_setting, instruction, trained=True, ranking="dense"):
    cfg = RunConfig(run_dir=str(tmp_path), solve={"tools": tools_setting, "retrieved_k": 1},
                    retriever={"ranking": ranking})
    io.write_part(TOOLS, cfg.path("toolsets"), Tool)
    if trained:
        monkeypatch.setattr(dense.Retriever, "load", classmethod(lambda cls, d: Ranked()))
        cfg.path("retriever").mkdir(parents=True)
        cfg.path("retriever", "report.json").write_text("{}")
    worker = SolveWorker(cfg, {"assistant": FakeChatModel([]), "executor": FakeChatModel([])})
    seen = []

    async def solve_instruction(inst, tools, *args, **kwargs):  # the core: what it is handed is the point
        seen.append((inst, [t.id for t in tools]))
        raise Handed

    monkeypatch.setattr(toolweave.search, "solve_instruction", solve_instruction)
    asyncio.run(worker.setup())
    with pytest.raises(Handed):
        asyncio.run(worker.process(instruction.to_row()))
    return seen[0]


def test_retrieved_setting_replaces_the_given_tools(tmp_path, monkeypatch):
    inst, tools = solved(tmp_path, monkeypatch, "retrieved", Instruction(id="q", text="route?", tool_ids=["weather"]))
    assert tools == ["maps"] and inst.extra["api_list"] == [{"tool": "maps", "function": "route"}]
    assert inst.extra["given"]["tool_ids"] == ["weather"]


def test_given_setting_retrieves_only_for_instructions_without_tools(tmp_path, monkeypatch):
    _, tools = solved(tmp_path, monkeypatch, "given", Instruction(id="q", text="t", tool_ids=["weather"]))
    assert tools == ["weather"]
    _, tools = solved(tmp_path / "b", monkeypatch, "given", Instruction(id="q", text="t", tool_ids=[]))
    assert tools == ["maps"]


def test_retrieved_without_a_trained_retriever_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="run the retriever stage"):
        solved(tmp_path, monkeypatch, "retrieved", Instruction(id="q", text="t", tool_ids=[]), trained=False)


def test_hybrid_ranking_serves_bm25_fused_with_the_encoder(tmp_path, monkeypatch):
    """retriever.ranking: hybrid: the encoder ranks route, now; BM25 now, lyrics, route; fused, now is first."""
    inst, tools = solved(tmp_path, monkeypatch, "retrieved", Instruction(id="q", text="weather now forecast"),
                         ranking="hybrid")
    assert tools == ["weather"] and inst.extra["api_list"] == [{"tool": "weather", "function": "now"}]
