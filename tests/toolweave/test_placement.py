"""Placement by node kind: each config's work fits a worker node kind of the cluster it targets;
what a stage places comes from its declaration (`toolweave check` and every job check it first)."""
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from toolweave.checks import check_file, run_problems
from toolweave.config import RunConfig, ServeDeploymentConfig, load_config
from toolweave.placement import PlacementError, check_placement, replica_bundles, requests
from toolweave.stages import registry
from toolweave.stages.registry import places

ROOT = Path(__file__).parents[2]
CLUSTER_CONFIGS = ["toolbench_dfsdt", "toolalpaca", "train_7b_zero3", "train_13b_zero3"]


def _cluster(tmp_path, **kinds) -> Path:
    types = {"head": {"resources": {"CPU": 8}, "node_config": {}}}
    types.update({name: {"resources": res, "min_workers": 0, "max_workers": 2, "node_config": {}}
                  for name, res in kinds.items()})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"head_node_type": "head", "available_node_types": types}))
    return path


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_the_cluster_configs_fit_cluster_yaml(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.ray.cluster == "cluster.yaml" and requests(cfg, places(cfg))
    check_placement(cfg, ROOT / "cluster.yaml", places(cfg))


def test_the_old_one_gpu_vllm_nodes_could_never_hold_a_tensor_parallel_4_replica(tmp_path):
    data = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    del data["available_node_types"]["gpu_vllm_x4"]  # cluster.yaml before the 4-GPU vLLM kind
    old = tmp_path / "cluster.yaml"
    old.write_text(yaml.safe_dump(data))
    cfg = load_config(ROOT / "configs" / "toolbench_dfsdt.yaml", ["ray.cluster=null"])
    with pytest.raises(PlacementError) as e:
        check_placement(cfg, old, places(cfg))
    msg = str(e.value)
    assert "\n" not in msg
    assert "llm.deployments llama-3.1-70b-instruct replica (tensor_parallel_size 4)" in msg
    assert "{CPU: 5, vllm: 4, GPU: 4}" in msg and "gpu_vllm {CPU: 8, GPU: 1, vllm: 1}" in msg


def placement_lines(problems: list[str]) -> list[str]:
    return [p for p in problems if p.startswith("config ")]


def test_the_check_refuses_with_one_line_naming_the_request(tmp_path):
    cluster = _cluster(tmp_path, sim={"CPU": 16, "simulate": 16}, gpu={"CPU": 8, "GPU": 1, "vllm": 1})
    on = [f"ray.cluster={cluster}", f"run_dir={tmp_path / 'run'}"]
    cfg, problems = check_file(None, [*on, "ray.actor_num_cpus=0.5", "ray.actor_resources={simulte: 1}",
                                      "stages=[solve]"])
    assert cfg is not None  # it loads: placement is the check's, before any job
    [line] = placement_lines(problems)
    assert re.search(r"^config 'run': episode actor .* asks for \{CPU: 0.5, simulte: 1\} on one node", line)
    [line] = placement_lines(check_file(None, [*on, "stages=[train]", "train.use_gpu=true",
                                               "train.resources_per_worker={trainer: 1}"])[1])
    assert re.search(r"train worker .* asks for \{CPU: 1, GPU: 1, trainer: 1\}", line)
    # a stage job is checked for what its own stage places: solve's job places no train worker
    cfg, problems = check_file(None, [*on, "stages=[solve, train]", "train.use_gpu=true",
                                      "train.resources_per_worker={trainer: 1}"], stages=["solve"])
    assert placement_lines(problems) == []
    ok, problems = check_file(None, [*on, "stages=[solve]", "ray.actor_resources={simulate: 0.5}",
                                     "llm.deployments=[{model_id: m, model_source: /m}]"])
    assert ok.ray.cluster == str(cluster) and placement_lines(problems) == []


def test_work_never_counts_on_the_head_and_max_workers_bound_the_count(tmp_path):
    cluster = _cluster(tmp_path, gpu={"CPU": 8, "GPU": 1, "vllm": 1})
    # CPU-only actors fit the head's 8 CPUs, but the head runs no work: only worker kinds count
    cpu_only = RunConfig(stages=["solve"], ray={"actor_num_cpus": 0.5})
    check_placement(cpu_only, cluster, places(cpu_only))  # they fit the gpu kind's CPUs
    heavy = RunConfig(stages=["solve"], ray={"actor_num_cpus": 12})
    with pytest.raises(PlacementError, match=r"no worker node kind .* \(gpu \{CPU: 8, GPU: 1, vllm: 1\}\)"):
        check_placement(heavy, cluster, places(heavy))
    three = RunConfig(stages=["solve"], llm={"deployments": [{"model_id": "m", "model_source": "/m", "min_replicas": 3}]})
    with pytest.raises(PlacementError, match=r"3 x llm.deployments m replica .* exceed what gpu hold at max_workers \(2\)"):
        check_placement(three, cluster, places(three))


def test_a_cpu_replica_reserves_its_bundle_plus_the_replica_actor():
    d = ServeDeploymentConfig(model_source="/m", gpus_per_worker=0, cpus_per_worker=1)
    assert replica_bundles(d) == [{"CPU": 2.0, "vllm": 1.0}]
    cfg = RunConfig(stages=["sft_data"], llm={"deployments": [d]})
    assert [r.resources for r in requests(cfg, places(cfg))] == [{"CPU": 2.0, "vllm": 1.0}]  # sft_data: no actor


def test_what_is_placed_comes_from_the_declarations():
    assert places(RunConfig(stages=["verify"])) == {"episode_actors"}  # per record: derived
    assert places(RunConfig(stages=["evaluate"])) == {"episode_actors"}  # declared: eval_solve's actors
    assert places(RunConfig(stages=["sweep"])) == {"train_workers"}
    assert places(RunConfig(stages=["dedupe", "export", "retriever"])) == set()
    assert places(RunConfig()) == {"episode_actors", "train_workers"}  # no chain: any stage's job


def test_a_newly_declared_per_record_stage_gets_its_actors_placed(tmp_path, monkeypatch):
    # a stage no placement code names: a per-record one places its episode actors by its declaration
    new = dataclasses.replace(registry.STAGES["solve"], name="rerank_tools", shaped_by=())
    monkeypatch.setitem(registry.STAGES, new.name, new)
    cluster = _cluster(tmp_path, gpu={"CPU": 8, "GPU": 1, "vllm": 1})
    cfg = RunConfig(stages=["rerank_tools"], ray={"actor_num_cpus": 12, "cluster": str(cluster)})
    assert places(cfg) == {"episode_actors"}
    [line] = placement_lines(run_problems(cfg))
    assert "episode actor (ray.actor_num_cpus, ray.actor_resources) asks for {CPU: 12} on one node" in line


def test_a_missing_cluster_file_is_named(tmp_path):
    cfg, problems = check_file(None, ["ray.cluster=nowhere.yaml", f"run_dir={tmp_path}", "stages=[train]",
                                      "train.data=sft"])
    assert cfg is not None and [p for p in problems if "nowhere" in p] == [
        "ray.cluster: nowhere.yaml not found (looked at nowhere.yaml)"]


def test_the_cluster_file_is_found_beside_the_config_from_any_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a job whose working dir is not the repo: configs/../cluster.yaml
    cfg, problems = check_file(ROOT / "configs" / "toolalpaca.yaml")
    assert cfg.ray.cluster == "cluster.yaml" and not any("not found" in p for p in problems), problems
