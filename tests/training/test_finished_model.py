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


def test_each_model_uploaded_to_an_object_store_is_a_version_of_its_own(tmp_path):
    """Serve LLM's bucket mirror keeps its local copy under snapshots/<the bucket's `hash` file>: each
    upload writes a new one, and the done-marker still lands last."""
    from toolweave import io
    from toolweave.testing.object_store import moto_s3
    from training.trainer import VERSION_FILE, upload_model

    local = tmp_path / "model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / DONE_FILE).write_text(json.dumps({"sft_rows": 1}))
    with moto_s3() as root:
        out = f"{root}/run/model"
        upload_model(local, out)
        first = io.read_text(io.join(out, VERSION_FILE))
        assert set(io.files_under(out)) == {"config.json", DONE_FILE, VERSION_FILE}
        upload_model(local, out)
        second = io.read_text(io.join(out, VERSION_FILE))
    assert first and second and first != second and len(second) == 32
