"""What a job's driver passes to `ray.init`: inside a submitted job, env vars its runtime_env already
sets are not passed again (Ray refuses a key given twice, and its error prints every value of the
job's env, credentials too); outside one, they are."""
import json
from types import SimpleNamespace

from training import ray_init as runtime
from toolweave.config import RunConfig


def _init_kwargs(monkeypatch, tmp_path) -> dict:
    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        return SimpleNamespace(address_info={})

    monkeypatch.setattr(runtime.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(runtime.ray, "init", fake_init)
    runtime.init_ray(RunConfig(run_dir=str(tmp_path), ray={"address": "127.0.0.1:1"}))
    return seen


def test_env_vars_the_submitted_job_sets_are_not_passed_again(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert _init_kwargs(monkeypatch, tmp_path)["runtime_env"]["env_vars"] == {
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(
        {"runtime_env": {"working_dir": "gcs://pkg.zip", "env_vars": {"HF_HUB_OFFLINE": "1", "AWS_SECRET_ACCESS_KEY": "x"}}}))
    assert _init_kwargs(monkeypatch, tmp_path)["runtime_env"]["env_vars"] == {"TOKENIZERS_PARALLELISM": "false"}
