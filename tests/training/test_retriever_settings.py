"""ToolBench's retriever training settings: warmup steps capped by the schedule, the best epoch kept."""
import pytest
import torch

from toolweave.retrieval.corpus import ApiDoc, RetrievalQuery
from toolweave.retrieval.dense import load_encoder
from training.retriever import KeepBest, train_encoder, warmup

DOCS = [ApiDoc("weather", "forecast", "weather, forecast: tomorrow's rain and temperature for a city"),
        ApiDoc("football", "transfers", "football, transfers: a player's clubs and transfer fees"),
        ApiDoc("music", "lyrics", "music, lyrics: the words of a song by title and artist")]


def test_warmup_is_a_ratio_unless_set_and_capped_by_the_steps():
    assert warmup(None, 1000, 32, 5) == 0.1
    assert warmup(500, 100, 32, 5) == 20  # 4 batches x 5 epochs: ToolBench's 500 cannot all happen
    assert warmup(500, 10_000, 32, 5) == 500


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
    train_encoder("all-MiniLM-L6-v2", train, docs, epochs=2, batch_size=2, warmup_steps=500, max_seq_length=32,
                  validation=validation, report=report, hard_negatives=True)
    assert len(report["validation_ndcg5_by_epoch"]) == 2 and report["best_epoch"] in (1, 2)


def test_bm25_negative_is_the_best_lexical_match_that_is_not_relevant():
    from training.retriever import bm25_negatives
    q = RetrievalQuery("q", "football transfer fees and song lyrics", frozenset({("football", "transfers")}))
    assert bm25_negatives([q], DOCS) == {"q": DOCS[2].text}
