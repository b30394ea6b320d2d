"""A run dir in an object store (moto's S3 server on 127.0.0.1) for evaluate: `solve_with: trained`
fetches `<run_dir>/model` into a local dir once per version of the model, and the report is
uploaded into the bucket (nothing written to a local "s3:" dir)."""
import json
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.evaluation.report import write_report
from toolweave.schemas import EvalResult
from toolweave.stages.evaluate import (MIRROR_VERSION_FILE, local_trained_model, model_fingerprint, model_source,
                                       served_model_id)


@pytest.fixture(scope="module")
def s3_root():
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root:
        yield root


def _cfg(run_dir: str) -> RunConfig:
    return RunConfig(run_dir=run_dir, evaluate={"solve_with": "trained"})


def test_the_trained_model_is_fetched_once_per_version(s3_root, tmp_path):
    cfg = _cfg(f"{s3_root}/{tmp_path.name}")
    with pytest.raises(FileNotFoundError, match=f"no trained model at s3://toolweave-test/{tmp_path.name}/model"):
        local_trained_model(cfg)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 1024}))
    (model / "model.safetensors").write_bytes(b"w" * 100)
    io.upload_dir(model, cfg.path("model"))

    local = local_trained_model(cfg)
    assert local.is_dir() and not io.is_remote(local) and (local / "model.safetensors").read_bytes() == b"w" * 100
    assert model_source(cfg) == str(local)
    before = model_fingerprint(cfg)
    assert local_trained_model(cfg) == local and model_fingerprint(cfg) == before  # not fetched again
    (model / "model.safetensors").write_bytes(b"v" * 120)  # a retrain: another version, another dir
    io.upload_dir(model, cfg.path("model"))
    again = local_trained_model(cfg)
    assert again != local and (again / "model.safetensors").read_bytes() == b"v" * 120
    assert model_fingerprint(cfg) != before


def test_each_version_of_a_stored_model_is_served_under_an_id_of_its_own(s3_root, tmp_path):
    """On Serve, the model under test's id names its version (each node's download of it is kept
    under that id): a new upload is a new id even with the same files' sizes in the same second (its
    `hash` file is new); another run's model another id; a local model stays "trained"."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / MIRROR_VERSION_FILE).write_text("a" * 32)
    cfg = _cfg(f"{s3_root}/{tmp_path.name}")
    io.upload_dir(model, cfg.path("model"))
    first = served_model_id(cfg)
    assert first.startswith("trained-") and served_model_id(cfg) == first  # the same version: the same id
    (model / MIRROR_VERSION_FILE).write_text("b" * 32)  # a retrain's upload
    io.upload_dir(model, cfg.path("model"))
    assert served_model_id(cfg) not in (first, "trained")
    other = _cfg(f"{s3_root}/{tmp_path.name}-other")
    io.upload_dir(model, other.path("model"))
    assert served_model_id(other) not in (first, served_model_id(cfg))
    assert served_model_id(_cfg(str(tmp_path))) == "trained"


def test_the_report_of_a_run_dir_in_an_object_store_is_uploaded(s3_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = f"{s3_root}/{tmp_path.name}/report"
    results = [EvalResult(id=f"r{i}", query_id=f"q{i}", method="dfsdt", split="test_inst", metric="pass_rate",
                          label=lab, score=float(lab == "Pass"), votes=[{"resolved": lab}], judge_model="judge-m")
               for i, lab in enumerate(["Pass", "Fail"])]
    summary = write_report(results, out, title="s3 run: evaluation")
    assert {"report.md", "report.html", "summary.json", "summary.parquet", "pass_rate.png"} <= set(io.files_under(out))
    uploaded = json.loads(io.read_text(io.join(out, "summary.json")))
    assert uploaded["title"] == summary["title"] == "s3 run: evaluation" and len(uploaded["rows"]) == len(summary["rows"])
    assert not Path("s3:").exists()
