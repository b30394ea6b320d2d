"""Retriever training settings: warm-up sized to the run, hard negatives mined from BM25 and the encoder, the best
epoch kept."""
import numpy as np
import pytest
import torch

from toolweave.retrieval.corpus import ApiDoc, RetrievalQuery
from toolweave.retrieval.dense import load_encoder
from training.retriever import KeepBest, train_encoder, warmup

DOCS = [ApiDoc("weather", "forecast", "weather, forecast: tomorrow's rain and temperature for a city"),
        ApiDoc("football", "transfers", "football, transfers: a player's clubs and transfer fees"),
        ApiDoc("music", "lyrics", "music, lyrics: the words of a song by title and artist")]


def test_warmup_is_a_share_of_the_runs_steps_and_a_fixed_count_past_its_end_is_refused():
    assert warmup(1000, 32, 5) == 16  # 32 batches x 5 epochs = 160 steps, 10 %
    assert warmup(1000, 32, 5, ratio=0.25) == 40
    assert warmup(10_000, 32, 5, steps=500) == 500
    with pytest.raises(ValueError, match=r"warmup_steps 500: the run has 20 optimizer steps .*all be warm-up"):
        warmup(100, 32, 5, steps=500)  # ToolBench's 500 on 4 batches x 5 epochs


def test_keep_best_restores_the_epoch_with_the_best_validation_ndcg():
    docs = DOCS
    validation = [RetrievalQuery("q1", "Will it rain in Paris tomorrow?", frozenset({("weather", "forecast")})),
                  RetrievalQuery("q2", "Which clubs did Messi play for?", frozenset({("football", "transfers")}))]
    model = load_encoder("all-MiniLM-L6-v2", 64)
    keep = KeepBest(model, docs, validation)
    states = []
    for epoch in range(3):
        if epoch:
            torch.manual_seed(epoch)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.5)  # a damaged "epoch"
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        keep.on_epoch_end(None, None, "control")
    assert keep.history[0] == 1.0 and min(keep.history) < 1.0  # the untouched encoder gets both right
    keep.restore()
    best = states[keep.history.index(max(keep.history))]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, states[-1][k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_training_with_hard_negatives_and_validation_reports_each_epoch_and_keeps_the_best():
    docs = DOCS
    train = [RetrievalQuery("t1", "rain tomorrow in Rome", frozenset({("weather", "forecast")})),
             RetrievalQuery("t2", "song words of Yesterday", frozenset({("music", "lyrics")}))]
    validation = [RetrievalQuery("v1", "Which clubs did Messi play for?", frozenset({("football", "transfers")}))]
    report = {}
    train_encoder("all-MiniLM-L6-v2", train, docs, epochs=2, batch_size=2, max_seq_length=32,
                  validation=validation, report=report, hard_negatives=("bm25", "dense"))
    assert len(report["validation_ndcg5_by_epoch"]) == 2 and report["best_epoch"] in (1, 2)
    assert report["training_rows"] == 2 and report["optimizer_steps"] == 2 and report["warmup_steps"] == 1
    assert report["queries_not_trained_on"] == 0


def test_bm25_negative_is_the_best_lexical_match_that_is_not_relevant():
    from training.retriever import bm25_negatives
    q = RetrievalQuery("q", "football transfer fees and song lyrics", frozenset({("football", "transfers")}))
    assert bm25_negatives([q], DOCS) == {"q": DOCS[2].text}


class FixedEncoder:
    """An encoder whose embeddings are given: what the dense miner ranks is known."""

    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts, **kwargs):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_dense_negative_is_the_encoders_best_wrong_api_not_bm25s():
    from training.retriever import bm25_negatives, dense_negatives
    q = RetrievalQuery("q", "football rain", frozenset({("weather", "forecast")}))
    # the encoder puts lyrics next to the query; BM25 (shared word "football") picks transfers
    encoder = FixedEncoder({q.text: [1, 0, 0], DOCS[0].text: [0.8, 0.6, 0], DOCS[1].text: [0, 1, 0],
                            DOCS[2].text: [0.6, 0, 0.8]})
    assert dense_negatives(encoder, [q], DOCS) == {"q": DOCS[2].text}
    from toolweave.retrieval.dense import Retriever
    built = Retriever(encoder, DOCS)
    encoder.vectors = {q.text: [1, 0, 0]}  # documents are not encoded again: the built embeddings are reused
    assert dense_negatives(built, [q], DOCS) == {"q": DOCS[2].text}
    assert bm25_negatives([q], DOCS) == {"q": DOCS[1].text}
    everything = RetrievalQuery("q", "x", frozenset(d.key for d in DOCS))
    encoder.vectors["x"] = [1, 0, 0]
    assert dense_negatives(built, [everything], DOCS) == {}  # every API relevant: no negative


def test_training_columns_one_negative_column_per_miner_and_fallback(monkeypatch):
    import training.retriever as tr
    queries = [RetrievalQuery("a", "rain", frozenset({("weather", "forecast"), ("music", "lyrics")})),
               RetrievalQuery("b", "clubs", frozenset({("football", "transfers")})),
               RetrievalQuery("c", "nothing found", frozenset({("weather", "forecast")}))]
    monkeypatch.setattr(tr, "bm25_negatives", lambda qs, docs: {"a": "bm25-a"})
    monkeypatch.setattr(tr, "dense_negatives", lambda enc, qs, docs: {"a": "dense-a", "b": "dense-b"})
    plain = tr.training_columns(queries, DOCS)
    assert list(plain) == ["anchor", "positive"] and plain["anchor"] == ["rain", "rain", "clubs", "nothing found"]
    cols = tr.training_columns(queries, DOCS, ["bm25", "dense"], encoder=object())
    assert list(cols) == ["anchor", "positive", "negative_bm25", "negative_dense"]
    # a: both, one row per relevant API; b: BM25 found none, takes the dense one; c: none, left out
    assert cols["anchor"] == ["rain", "rain", "clubs"]
    assert cols["negative_bm25"] == ["bm25-a", "bm25-a", "dense-b"]
    assert cols["negative_dense"] == ["dense-a", "dense-a", "dense-b"]
    assert cols["positive"][2] == DOCS[1].text


def test_config_hard_negatives_and_ranking():
    from toolweave.config import RunConfig
    assert RunConfig(run_dir="r", retriever={"hard_negatives": True}).retriever.hard_negatives == ["bm25"]
    assert RunConfig(run_dir="r", retriever={"hard_negatives": False}).retriever.hard_negatives == []
    both = RunConfig(run_dir="r", retriever={"hard_negatives": ["bm25", "dense"], "ranking": "hybrid"}).retriever
    assert both.hard_negatives == ["bm25", "dense"] and both.ranking == "hybrid"
    with pytest.raises(ValueError, match="ranking"):
        RunConfig(run_dir="r", retriever={"ranking": "sparse"})
    with pytest.raises(ValueError, match="hard_negatives"):
        RunConfig(run_dir="r", retriever={"hard_negatives": ["tfidf"]})


def test_stage_summary_reports_the_served_rankings_ndcg5_and_ranking_alone_retrains_nothing(tmp_path, monkeypatch):
    """The summary's ndcg@5 is the held-out NDCG@5 of `retriever.ranking`; switching the ranking only
    changes what is served, so a rerun reads the report (which has both rankings) instead of training."""
    import json
    from pathlib import Path

    import training.retriever as tr
    from toolweave.config import RunConfig
    from toolweave.stages.registry import context

    trained = []

    def fake_train(docs, queries, out, **kw):
        trained.append(kw["ranking"])
        report = {"trained": {"ndcg@5": 0.61}, "hybrid": {"ndcg@5": 0.64}, "ranking": kw["ranking"],
                  "ndcg@5": 0.64 if kw["ranking"] == "hybrid" else 0.61, "test_query_ids": ["1"]}
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "report.json").write_text(json.dumps(report))
        return report

    monkeypatch.setattr(tr, "train_and_evaluate", fake_train)
    g1 = Path(__file__).parents[1] / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"
    cfg = RunConfig(run_dir=str(tmp_path), retriever={"queries": [str(g1)]})
    first = tr.run(context(cfg, "retriever"))
    assert first["ranking"] == "dense" and first["ndcg@5"] == 0.61 and "test_query_ids" not in first
    cfg.retriever.ranking = "hybrid"
    again = tr.run(context(cfg, "retriever"))
    assert again["skipped"] and again["ranking"] == "hybrid" and again["ndcg@5"] == 0.64
    assert trained == ["dense"]
    cfg.retriever.hard_negatives = ["bm25"]  # a training setting: trained again
    tr.run(context(cfg, "retriever"))
    assert trained == ["dense", "hybrid"]
