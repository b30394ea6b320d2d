"""A `simulate` node is lost in the middle of a record stage (the real pipeline: Ray Data over the
episode actor pool, exactly-once commits), with the LLM played by the scripted server. The stage
finishes on the node that is left; every record is written once: none lost, none twice. The
episode actors run only on `simulate` nodes (asserted from Ray's state API)."""
from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.cluster.conftest import local_cluster, node_id, wait_for
from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

N = 240


def _map_actors():
    from ray.util.state import list_actors
    return [a for a in list_actors(limit=1000, detail=True) if "MapWorker" in (a.class_name or "")]


def test_losing_a_simulate_node_mid_stage_loses_and_repeats_nothing(tmp_path, scripted_server):
    from ray_jobs.pipeline import run_records
    from toolweave.stages import probe

    server = scripted_server(handler=lambda body: "ok", latency_s=0.25)
    run_dir = tmp_path / "run"
    io.write_part((Instruction(id=f"ins-{i:04d}", text=f"request {i}") for i in range(N)),
                  run_dir / "instructions", Instruction, name="all")
    cfg = RunConfig(run_dir=str(run_dir), llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": server.base_url, "model": "scripted", "is_vllm": False, "timeout_s": 60}}},
        ray={"actor_num_cpus": 0.25, "actor_resources": {"simulate": 1}, "min_actors": 2, "max_actors": 2},
        run={"batch_size": 8, "max_in_flight": 8, "show_progress": False})
    sim = {"num_cpus": 1, "resources": {"simulate": 2}}
    with local_cluster(head_cpus=1, sim_a=sim, sim_b=sim) as (cluster, nodes):
        sim_nodes = {node_id(nodes["sim_a"]): "sim_a", node_id(nodes["sim_b"]): "sim_b"}
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(run_records(cfg, probe.STAGE)))
        runner.start()
        # mid-run: some batches committed, some not yet
        wait_for(lambda: len(io.part_files(run_dir / "episodes")) >= 3, 180, "first commits")
        alive = wait_for(lambda: [a for a in _map_actors() if a.state == "ALIVE"], 60, "episode actors alive")
        victim = sim_nodes[alive[0].node_id]
        done_before = len(io.existing_ids(run_dir / "episodes"))
        cluster.remove_node(nodes[victim])
        runner.join(timeout=600)
        assert not runner.is_alive(), "the stage did not finish after the node was lost"
        actors = _map_actors()
    assert done_before < N  # the node really went mid-run
    assert result["processed"] == N and result["failed"] == 0
    ids = [r["id"] for r in io.iter_rows(run_dir / "episodes", columns=["id"])]
    assert len(ids) == N and not [i for i, n in Counter(ids).items() if n > 1]
    # every episode actor sat on a simulate node; the lost node's were restarted on the other one
    assert {a.node_id for a in actors} <= set(sim_nodes)
    assert not [a for a in actors if sim_nodes[a.node_id] == victim and a.state == "ALIVE"]
    assert any(a.num_restarts >= 1 for a in actors)
