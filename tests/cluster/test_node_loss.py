"""A `simulate` node is lost in the middle of the `solve` stage (Ray Data over the episode actor pool,
DFSDT episodes, exactly-once commits), with the assistant and the simulated APIs played by the
scripted server (tests/configs/scripted_roles.py: one API call, then Finish). The stage finishes on
the node that is left; every instruction is solved once: none lost, none twice. The episode actors
run only on `simulate` nodes (asserted from Ray's state API)."""
from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.cluster.conftest import local_cluster, node_id, wait_for
from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Function, Instruction, Tool

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

N = 160
TOOL = Tool(id="orders", name="orders", description="Order lookup.",
            functions=[Function(name="get_order", description="An order by id.",
                                parameters={"type": "object", "properties": {"id": {"type": "integer"}}})])


def _map_actors():
    from ray.util.state import list_actors
    return [a for a in list_actors(limit=1000, detail=True) if "MapWorker" in (a.class_name or "")]


def test_losing_a_simulate_node_mid_stage_loses_and_repeats_nothing(tmp_path, scripted_server):
    from ray_jobs.pipeline import run_records
    from tests.configs.scripted_roles import scripted_roles
    from toolweave.stages import solve

    server = scripted_server(handler=scripted_roles, latency_s=0.25)
    run_dir = tmp_path / "run"
    io.write_part([TOOL], run_dir / "toolsets", Tool)
    io.write_part((Instruction(id=f"ins-{i:04d}", text=f"Look up order {i}.", tool_ids=["orders"]) for i in range(N)),
                  run_dir / "instructions", Instruction, name="all")
    cfg = RunConfig(run_dir=str(run_dir), llm={"engine": "endpoints", "endpoints": {"default": {
        "base_url": server.base_url, "model": "scripted", "is_vllm": False, "timeout_s": 60}}},
        solve={"method": "dfsdt", "width": 1, "max_steps": 3, "max_llm_calls": 4},
        ray={"actor_num_cpus": 0.25, "actor_resources": {"simulate": 1}, "min_actors": 2, "max_actors": 2},
        run={"batch_size": 8, "max_in_flight": 8, "show_progress": False})
    sim = {"num_cpus": 1, "resources": {"simulate": 2}}
    with local_cluster(head_cpus=1, sim_a=sim, sim_b=sim) as (cluster, nodes):
        sim_nodes = {node_id(nodes["sim_a"]): "sim_a", node_id(nodes["sim_b"]): "sim_b"}
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(run_records(cfg, solve.STAGE)))
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
    solved = [(r["instruction_id"], r["status"]) for r in io.iter_rows(run_dir / "episodes")]
    ids = [i for i, _ in solved]
    assert len(ids) == N and not [i for i, n in Counter(ids).items() if n > 1]
    assert {status for _, status in solved} == {"answered"}  # real DFSDT episodes: the API called, then Finish
    # every episode actor sat on a simulate node; the lost node's were restarted on the other one
    assert {a.node_id for a in actors} <= set(sim_nodes)
    assert not [a for a in actors if sim_nodes[a.node_id] == victim and a.state == "ALIVE"]
    assert any(a.num_restarts >= 1 for a in actors)
