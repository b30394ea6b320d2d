import random

import torch

from toolweave.config import TrainConfig
from training.model import build_model
from training.packing import Example, collate, efficiency, pack, to_record, unpack
from training.tokenize import IGNORE


def _examples(n, lo, hi, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(lo, hi)
        ids = [rng.randrange(5, 500) for _ in range(k)]
        out.append(Example(f"e{i}", ids, [IGNORE] * (k // 2) + ids[k // 2:]))
    return out


def test_pack_keeps_every_example_within_max_len_and_is_dense():
    exs = _examples(400, 20, 700)
    rows = pack(exs, 2048)
    assert sorted(e.episode_id for r in rows for e in r) == sorted(e.episode_id for e in exs)
    assert all(sum(len(e) for e in r) <= 2048 for r in rows)
    recs = [to_record(r, "x") for r in rows]
    assert efficiency([len(r.input_ids) for r in recs], 2048) > 0.97
    back = {e.episode_id: e for r in recs for e in unpack(r)}
    for e in exs:  # round trip, first label of each example dropped from the loss
        assert back[e.episode_id].input_ids == e.input_ids
        assert back[e.episode_id].labels == [IGNORE] + e.labels[1:]


def test_packed_forward_equals_unpacked_forward():
    """Attention never crosses example boundaries: logits of each example are the same packed or alone."""
    train = TrainConfig(tiny={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "num_key_value_heads": 2}, max_len=256)
    model = build_model(train, vocab_size=512).eval()
    exs = _examples(5, 10, 60, seed=1)
    rows = pack(exs, 128)
    assert any(len(r) > 1 for r in rows)
    recs = [to_record(r, "x").model_dump() for r in rows]
    batch = collate(recs, pad_id=0, pad_to=130)  # padding too: its own block
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        # negative control: the same rows with positions not restarting attend across examples
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits
        diffs = []
        for b, rec in enumerate(recs):
            start = 0
            for e in unpack(rec):
                alone = model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0]
                torch.testing.assert_close(packed[b, start:start + len(e)], alone, atol=1e-4, rtol=1e-4)
                diffs.append((leaky[b, start:start + len(e)] - alone).abs().max().item())
                start += len(e)
    assert max(diffs) > 1e-2


def test_collate_pads_with_ignored_labels_and_restarting_positions():
    recs = [to_record([e], "x").model_dump() for e in _examples(2, 5, 9, seed=3)]
    b = collate(recs, pad_id=7)
    n0, n1 = len(recs[0]["input_ids"]), len(recs[1]["input_ids"])
    w = max(n0, n1)
    short = 0 if n0 < n1 else 1
    n = min(n0, n1)
    assert b["input_ids"].shape == (2, w)
    assert (b["labels"][short, n:] == IGNORE).all() and (b["input_ids"][short, n:] == 7).all()
    assert b["position_ids"][short, n:].tolist() == list(range(w - n))
