"""ToolBench's "retriever" setting: the instruction's tools and api_list become the retrieved APIs'."""
import pytest

from toolweave.retrieval.solve_tools import with_retrieved_tools
from toolweave.schemas import Instruction


class Ranked:
    def __init__(self, hits):
        self.hits, self.queries = hits, []

    def top_k(self, query, k=5):
        self.queries.append((query, k))
        return self.hits[:k]


def test_top_k_apis_become_the_tools_and_api_list_and_the_given_ones_are_kept():
    inst = Instruction(id="q1", text="rain in Paris?", tool_ids=["weather"],
                       extra={"api_list": [{"tool": "weather", "function": "now"}], "seed": 1})
    ranker = Ranked([("maps", "geocode", 0.9), ("gone", "x", 0.8), ("weather", "forecast", 0.7),
                     ("maps", "route", 0.6), ("music", "lyrics", 0.1)])
    out = with_retrieved_tools(inst, ranker, 4, {"maps", "weather", "music"})
    assert ranker.queries == [("rain in Paris?", 4)]
    assert out.tool_ids == ["maps", "weather"]  # tools of the hits, best first, unknown tools skipped
    assert out.extra["api_list"] == [{"tool": "maps", "function": "geocode"}, {"tool": "weather", "function": "forecast"},
                                     {"tool": "maps", "function": "route"}]
    assert out.extra["given"] == {"tool_ids": ["weather"], "api_list": [{"tool": "weather", "function": "now"}]}
    assert out.extra["seed"] == 1 and inst.tool_ids == ["weather"]  # the input is not changed


def test_nothing_retrieved_names_the_instruction():
    with pytest.raises(LookupError, match="'q2'"):
        with_retrieved_tools(Instruction(id="q2", text="t", tool_ids=[]), Ranked([("gone", "x", 1.0)]), 5, {"maps"})
