"""ToolBench's retriever training settings: warmup steps capped by the schedule, the best epoch kept."""
import torch

from toolweave.retrieval.corpus import ApiDoc, RetrievalQuery
from toolweave.retrieval.dense import load_encoder
from training.retriever import KeepBest, warmup


def test_warmup_is_a_ratio_unless_set_and_capped_by_the_steps():
    assert warmup(None, 1000, 32, 5) == 0.1
    assert warmup(500, 100, 32, 5) == 20  # 4 batches x 5 epochs: ToolBench's 500 cannot all happen
    assert warmup(500, 10_000, 32, 5) == 500


def test_keep_best_restores_the_epoch_with_the_best_validation_ndcg():
    docs = [ApiDoc("weather", "forecast", "weather, forecast: tomorrow's rain and temperature for a city"),
            ApiDoc("football", "transfers", "football, transfers: a player's clubs and transfer fees"),
            ApiDoc("music", "lyrics", "music, lyrics: the words of a song by title and artist")]
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
