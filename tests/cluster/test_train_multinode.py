"""ZeRO-3 across two `trainer` nodes of a local multi-node Ray cluster (one Ray Train worker per node,
the tiny Llama from config, SmolLM2's shipped tokenizer, real ToolBench episodes as SFT data),
checkpoints on a directory both nodes see. Mid-run, after a checkpoint, the node of one worker is
removed; the autoscaler's part (a replacement `trainer` node) is played by `add_node`. Ray Train
restarts the group (FailureConfig) and the workers restore the last checkpoint: training goes on
from its step, not from step 0, and finishes."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.cluster.conftest import local_cluster, node_id, wait_for
from tests.training.conftest import toolbench_example_episodes
from toolweave.config import RunConfig
from toolweave.io import write_part
from toolweave.schemas import Episode
from toolweave.stages.registry import context

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

TRAINER_NODE = {"num_cpus": 1, "resources": {"trainer": 1}}


def build_deepspeed_ops() -> None:
    """DeepSpeed's CPU comm op (JIT-compiled on first use) built once here: two workers starting
    together on one machine would race to build it into the same cache."""
    from deepspeed.accelerator import get_accelerator
    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None:
        builder.load()


def train_workers():
    from ray.util.state import list_actors
    return [a for a in list_actors(limit=1000, detail=True) if "TrainWorker" in (a.class_name or "")]


def _logged_steps(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def test_zero3_on_two_trainer_nodes_resumes_from_checkpoint_after_losing_a_node(tmp_path):
    from training import sft_data, trainer

    shared = tmp_path / "shared"  # the run dir every node sees (Ray Train's storage path under it)
    cfg = RunConfig.model_validate({
        "name": "mn", "run_dir": str(shared), "run": {"show_progress": False},
        "verify": {"require": []},  # the real ChatGPT episodes as they are: no verify stage here
        "sft": {"max_len": 2048, "truncate": True},
        "train": {"max_len": 2048, "epochs": 4, "lr": 3e-3, "warmup_ratio": 0.0, "checkpoint_every": 2,
                  "num_workers": 2, "num_cpus_per_worker": 0.25, "resources_per_worker": {"trainer": 1},
                  "zero_stage": 3, "max_failures": 2, "save_model": False}})
    write_part(toolbench_example_episodes(), cfg.path("episodes"), Episode)
    assert sft_data.run(context(cfg, "sft_data"))["rows"] >= 4  # 2 steps an epoch on 2 workers: 8 steps
    metrics_log = cfg.path("train", "mn-sft", "metrics.jsonl")
    build_deepspeed_ops()

    with local_cluster(head_cpus=1, trainer_a=TRAINER_NODE, trainer_b=TRAINER_NODE) as (cluster, nodes):
        trainer_nodes = {node_id(n): kind for kind, n in nodes.items()}
        result: dict = {}
        errors: list[BaseException] = []

        def drive():
            try:
                result.update(trainer.run(context(cfg, "train")))
            except BaseException as e:  # noqa: BLE001 -- reported by the test thread
                errors.append(e)

        runner = threading.Thread(target=drive)
        runner.start()
        workers = wait_for(lambda: (alive := [w for w in train_workers() if w.state == "ALIVE"]) and len(alive) == 2
                           and alive, 180, "two train workers alive")
        # one worker per trainer node, none elsewhere
        assert sorted(trainer_nodes[w.node_id] for w in workers) == ["trainer_a", "trainer_b"]
        # the step after the checkpoint of step 2 was logged: that checkpoint was reported by both workers
        wait_for(lambda: any(m["step"] >= 3 for m in _logged_steps(metrics_log)), 300, "step 3 logged")
        lost_at = max(m["step"] for m in _logged_steps(metrics_log))
        cluster.remove_node(nodes["trainer_b"])
        replacement = cluster.add_node(object_store_memory=80 * 1024 * 1024, **TRAINER_NODE)
        runner.join(timeout=400)
        assert not runner.is_alive(), "training did not finish after the node was lost"
        # the restarted group has its workers on the trainer nodes left, the replacement included
        nodes_after = {w.node_id for w in train_workers()}
    assert not errors, errors
    log = _logged_steps(metrics_log)
    steps = [m["step"] for m in log]
    total = log[-1]["total_steps"]
    assert lost_at < total, "the node must go mid-run"
    assert result["step"] == total and steps[-1] == total
    # the restarted group resumed from a checkpoint (step >= 2), never from step 0
    restarts = [m for m in log if m["resumed_from"] > 0]
    assert restarts, f"no resumed step logged: {steps}"
    first_resumed = restarts[0]
    assert first_resumed["resumed_from"] >= 2 and first_resumed["resumed_from"] % 2 == 0
    assert first_resumed["step"] == first_resumed["resumed_from"] + 1
    assert steps.count(1) == 1, f"training started again from step 0: {steps}"
    assert result["resumed_from"] == first_resumed["resumed_from"]
    # the checkpoints are on the shared storage path
    assert list(cfg.path("train", "mn-sft").glob("checkpoint_*"))
    assert node_id(replacement) in nodes_after
