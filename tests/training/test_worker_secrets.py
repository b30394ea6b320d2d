"""Processes of the training stages that load no config (Ray Train and Tune workers) and the retriever
stage register the config's secrets in their own registry: a key an error or log line quotes there is
redacted as in the driver."""
import pytest

from toolweave import secrets
from toolweave.config import RunConfig
from toolweave.stages.registry import context

KEY = "tw-worker-Kq7Zp2Wm9Xv4Rt8Ls3"


@pytest.fixture
def named_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("TW_TEST_WORKER_KEY", KEY)
    cfg = RunConfig.model_validate({"run_dir": str(tmp_path / "run"), "secret_env": ["TW_TEST_WORKER_KEY"]})
    with secrets.isolated():
        assert secrets.redact(f"quoted {KEY}") == f"quoted {KEY}"  # not registered yet in this process
        yield cfg


def test_a_train_or_tune_worker_registers_the_configs_secrets(named_secret):
    from training.trainer import worker_config
    cfg = worker_config(named_secret.model_dump(mode="json"))  # the config as a worker is handed it
    assert cfg.secret_env == ["TW_TEST_WORKER_KEY"]
    assert secrets.redact(f"401: key ending {KEY[-12:]}") == "401: key ending ***"


def test_the_retriever_stage_registers_them_before_reading_anything(named_secret):
    from training.retriever import run
    with pytest.raises(ValueError, match="0 API documents"):
        run(context(named_secret, "retriever"))  # an empty run dir: it stops at once
    assert secrets.redact(f"quoted {KEY}") == "quoted ***"
