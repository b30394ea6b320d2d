"""A Tune sweep on a `trainer` node of a local multi-node cluster: trials are scored on the held-out
validation split (`val_loss`, reported every step; the best trial is the lowest), each trial packs its
SFT rows at its swept `sft.max_len`, their Ray Train workers run only on the
`trainer` node, and ASHA (grace period 1) stops the trial whose learning rate is too small to learn
before its last step, while the good trial runs to the end."""
from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import local_cluster
from tests.cluster.test_train_multinode import build_deepspeed_ops, train_workers
from tests.training.conftest import toolbench_example_episodes
from toolweave.config import RunConfig
from toolweave.io import iter_rows, write_part
from toolweave.schemas import Episode
from toolweave.stages.registry import context

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

GOOD_LR, BAD_LR = 3e-3, 1e-7


def test_asha_stops_the_weak_trial_scored_on_validation_loss_on_trainer_nodes(tmp_path):
    from training import sft_data, sweep

    cfg = RunConfig.model_validate({
        "name": "sw", "run_dir": str(tmp_path / "shared"), "run": {"show_progress": False},
        "verify": {"require": []},  # the real ChatGPT episodes as they are: no verify stage here
        "sft": {"max_len": 2048, "truncate": True},
        "train": {"max_len": 2048, "epochs": 2, "warmup_ratio": 0.0, "checkpoint_every": 1, "num_workers": 1,
                  "num_cpus_per_worker": 0.25, "resources_per_worker": {"trainer": 1}, "zero_stage": 3,
                  "save_model": False},
        # grid order: the good trial first, so the weak one meets a recorded rung and is cut there
        # sft.max_len in the space: each trial re-packs its own SFT rows (at the length given here)
        "sweep": {"space": {"train.lr": {"grid": [GOOD_LR, BAD_LR]}, "sft.max_len": {"choice": [2048]}},
                  "num_samples": 1, "grace_period": 1,
                  "reduction_factor": 2, "max_t": 20, "max_concurrent": 1, "validation_fraction": 0.25}})
    write_part(toolbench_example_episodes(), cfg.path("episodes"), Episode)
    sft_data.run(context(cfg, "sft_data"))
    build_deepspeed_ops()

    with local_cluster(head_cpus=1, trainer={"num_cpus": 2, "resources": {"trainer": 1}}) as (_, nodes):
        summary = sweep.run(context(cfg, "sweep"))
        worker_nodes = {w.node_id for w in train_workers()}
    assert worker_nodes == {nodes["trainer"].node_id}

    rows = {r["train.lr"]: r for r in json.loads(cfg.path("sweep", "results.json").read_text())}
    good, bad = rows[GOOD_LR], rows[BAD_LR]
    assert summary["trials"] == 2 and summary["stopped_early"] == 1 and summary["finished"] == 2
    assert all(r["checkpoint"] and r["sft.max_len"] == 2048 for r in rows.values())
    assert list(cfg.path("sweep", "data").glob("sft_len2048_*"))  # the trials' own packed rows
    assert not good["stopped_early"] and good["step"] == good["total_steps"] >= 6
    assert bad["stopped_early"] and bad["step"] < bad["total_steps"] and not bad["error"]
    assert summary["best"]["train.lr"] == GOOD_LR and good["val_loss"] < bad["val_loss"]
    # the score is the held-out loss: no validation episode is trained on
    held_out = {e for r in iter_rows(cfg.path("sweep", "data", "validation")) for e in r["episode_ids"]}
    trained = {e for r in iter_rows(cfg.path("sweep", "data", "train")) for e in r["episode_ids"]}
    assert held_out and trained and not held_out & trained
    assert good["val_loss"] != good["loss"]
