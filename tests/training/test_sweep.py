"""The sweep's held-out validation split: by episode, disjoint from training, stable across calls."""
from toolweave.io import iter_rows, write_part
from toolweave.schemas import SFTExample
from training.packing import Example, pack, to_record
from training.sweep import split_validation


def _episode_ids(path) -> list[str]:
    return sorted(e for r in iter_rows(path) for e in r["episode_ids"])


def test_validation_split_holds_out_whole_episodes_the_same_way_each_time(tmp_path):
    exs = [Example(f"ep-{i}", list(range(10, 10 + 20 + i)), list(range(10, 10 + 20 + i))) for i in range(10)]
    write_part([to_record(r, "t") for r in pack(exs, 128)], tmp_path / "sft", SFTExample)
    train, val = split_validation(tmp_path / "sft", tmp_path / "a", 0.2, 128, "t")
    held, trained = _episode_ids(val), _episode_ids(train)
    assert len(held) == 2 and len(trained) == 8 and not set(held) & set(trained)
    assert sorted(held + trained) == sorted(e.episode_id for e in exs)
    train2, val2 = split_validation(tmp_path / "sft", tmp_path / "b", 0.2, 128, "t")
    assert _episode_ids(val2) == held and _episode_ids(train2) == trained
    # at least one example is held out, and at least one is trained on
    _, val3 = split_validation(tmp_path / "sft", tmp_path / "c", 0.01, 128, "t")
    assert len(_episode_ids(val3)) == 1
