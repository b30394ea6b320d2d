"""The dense retriever with the shipped all-MiniLM-L6-v2 on a handful of documents: ranking, save/load."""
import pytest

from toolweave.retrieval.corpus import ApiDoc
from toolweave.retrieval.dense import Retriever, resolve_encoder

DOCS = [ApiDoc("weather", "current", "Weather, OpenWeather, current, current temperature and rain for a city"),
        ApiDoc("football", "players", "Sports, Transfermarkt, players, football player career, clubs and transfers"),
        ApiDoc("recipes", "search", "Food, Recipes, search, cooking recipes by ingredient"),
        ApiDoc("stocks", "quote", "Finance, Stocks, quote, latest stock price of a company ticker")]


def test_resolve_shipped_encoder_offline():
    path = resolve_encoder("all-MiniLM-L6-v2")
    assert path.endswith("all-MiniLM-L6-v2") or "minilm" in path.lower()


def test_top_k_ranks_and_round_trips(tmp_path):
    r = Retriever.build("all-MiniLM-L6-v2", DOCS, max_seq_length=64)
    top = r.top_k("Which clubs did Lionel Messi play for?", 2)
    assert top[0][:2] == ("football", "players") and top[0][2] > top[1][2]
    assert r.top_k("Is it going to rain in Paris today?", 1)[0][:2] == ("weather", "current")
    r.save(tmp_path / "retr")
    loaded = Retriever.load(tmp_path / "retr")
    assert loaded.docs == DOCS
    again = loaded.top_k("Which clubs did Lionel Messi play for?", 2)
    assert [x[:2] for x in again] == [x[:2] for x in top]
    assert again[0][2] == pytest.approx(top[0][2], abs=1e-4)


def test_load_rejects_a_non_retriever_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a retriever directory"):
        Retriever.load(tmp_path)
