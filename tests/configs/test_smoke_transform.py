"""toolweave.smoke on every shipped config: only the keys its docstring lists move; stages, preset,
placement, storage and the roles' model names stay; the scaled-down config passes the checks a run
does; and every config of configs/ has a smoke run in tests/configs/test_smoke_runs.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolweave.checks import run_problems
from toolweave.config import load_config
from toolweave.smoke import changed_keys, outside_changed, smoke_config

ROOT = Path(__file__).parents[2]
CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name repository paths (cluster.yaml, tests/data)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_changes_only_the_listed_keys_and_keeps_what_a_run_depends_on(name):
    cfg = load_config(ROOT / "configs" / name)
    out = smoke_config(cfg, llm_url="http://127.0.0.1:9/v1", cpu=True)
    assert outside_changed(changed_keys(cfg, out)) == []
    assert (out.stages, out.preset, out.ray.cluster, out.ray.actor_resources, out.train.resources_per_worker) == \
        (cfg.stages, cfg.preset, cfg.ray.cluster, cfg.ray.actor_resources, cfg.train.resources_per_worker)
    assert out.run_dir == f"{cfg.run_dir}-smoke"
    assert [(d.model_id, d.placement_resources, d.tool_call_parser) for d in out.llm.deployments] == \
        [(d.model_id, d.placement_resources, d.tool_call_parser) for d in cfg.llm.deployments]
    assert all(d.model_source == "smollm2" and d.gpus_per_worker == 0 and d.max_replicas == 1
               for d in out.llm.deployments)
    assert {r: e.model for r, e in out.llm.endpoints.items()} == \
        {r: e.model for r, e in cfg.llm.endpoints.items()} or not cfg.llm.endpoints
    assert out.train.model == "tiny" and not out.train.use_gpu and out.train.max_steps == 1
    assert out.sft.tokenizer in (None, "smollm2")  # the tiny stand-in's own
    if cfg.train.rope_original_max_len:  # the RoPE stretch is scaled, not dropped
        assert out.train.max_len / out.train.rope_original_max_len == cfg.train.max_len / cfg.train.rope_original_max_len
    # what `toolweave run` checks first: a local config's smoke run passes on this CPU-only machine; a
    # cluster config's has no problem the config itself lacks (those of the models it swapped go)
    expected = [p.replace(cfg.run_dir, out.run_dir) for p in run_problems(cfg)] if cfg.ray.cluster else []
    assert set(run_problems(out)) <= set(expected)


def test_without_cpu_a_cluster_config_keeps_its_devices():
    cfg = load_config(ROOT / "configs" / "toolbench_dfsdt.yaml")
    out = smoke_config(cfg)  # a cluster config: the nodes' devices are the cluster's
    assert [d.gpus_per_worker for d in out.llm.deployments] == [d.gpus_per_worker for d in cfg.llm.deployments]
    assert out.llm.engine == "serve" and {d.model_source for d in out.llm.deployments} == {"smollm2"}


def test_a_cut_the_check_knows_is_named():
    from toolweave.smoke import CHANGED
    assert outside_changed(["run.limit", "llm.deployments.#.model_source", "solve.width"]) == ["solve.width"]
    assert "solve.width" not in CHANGED


def test_every_shipped_config_has_a_smoke_run():
    from tests.configs.test_smoke_runs import SMOKE_RUNS
    missing = sorted(set(CONFIGS) - set(SMOKE_RUNS))
    assert not missing, f"configs without a smoke run in tests/configs/test_smoke_runs.py SMOKE_RUNS: {missing}"
    assert not set(SMOKE_RUNS) - set(CONFIGS), "SMOKE_RUNS names configs that do not exist"
