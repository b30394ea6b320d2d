"""A rerun of a finished chain neither trains again nor rewrites the model: the model dir's record
says which training made it."""
import json

from toolweave.config import RunConfig
from training.trainer import DONE_FILE, finished_model


def test_finished_model_matches_only_the_same_training(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), train={"model": "smollm2", "max_steps": 2})
    model_dir = tmp_path / "model"
    assert finished_model(cfg, model_dir, 4) is None  # nothing saved yet
    model_dir.mkdir()
    record = {"train": cfg.train.model_dump(mode="json"), "sft_rows": 4, "metrics": {"step": 2, "loss": 0.5}}
    (model_dir / DONE_FILE).write_text(json.dumps(record))
    assert finished_model(cfg, model_dir, 4)["metrics"]["step"] == 2
    assert finished_model(cfg, model_dir, 5) is None  # more SFT rows since: train again
    longer = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": 3})})
    assert finished_model(longer, model_dir, 4) is None
    (model_dir / DONE_FILE).write_text("{not json")
    assert finished_model(cfg, model_dir, 4) is None
