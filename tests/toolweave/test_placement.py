"""Placement by node kind: each config's work fits a worker node kind of the cluster it targets."""
from pathlib import Path

import pytest
import yaml

from toolweave.config import RunConfig, ServeDeploymentConfig, load_config
from toolweave.placement import PlacementError, check_placement, replica_bundles, requests

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
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")  # checked while loading
    assert cfg.ray.cluster == "cluster.yaml" and requests(cfg)


def test_the_old_one_gpu_vllm_nodes_could_never_hold_a_tensor_parallel_4_replica(tmp_path):
    data = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    del data["available_node_types"]["gpu_vllm_x4"]  # cluster.yaml before the 4-GPU vLLM kind
    old = tmp_path / "cluster.yaml"
    old.write_text(yaml.safe_dump(data))
    cfg = load_config(ROOT / "configs" / "toolbench_dfsdt.yaml", ["ray.cluster=null"])
    with pytest.raises(PlacementError) as e:
        check_placement(cfg, old)
    msg = str(e.value)
    assert "\n" not in msg
    assert "llm.deployments llama-3.1-70b-instruct replica (tensor_parallel_size 4)" in msg
    assert "{CPU: 5, vllm: 4, GPU: 4}" in msg and "gpu_vllm {CPU: 8, GPU: 1, vllm: 1}" in msg


def test_load_fails_with_one_line_naming_the_request(tmp_path):
    cluster = _cluster(tmp_path, sim={"CPU": 16, "simulate": 16}, gpu={"CPU": 8, "GPU": 1, "vllm": 1})
    with pytest.raises(PlacementError, match=r"episode actor .* asks for \{CPU: 0.5, simulte: 1\} on one node"):
        load_config(None, [f"ray.cluster={cluster}", "ray.actor_num_cpus=0.5", "ray.actor_resources={simulte: 1}",
                           "stages=[solve]"])
    with pytest.raises(PlacementError, match=r"train worker .* asks for \{CPU: 1, GPU: 1, trainer: 1\}"):
        load_config(None, [f"ray.cluster={cluster}", "stages=[train]", "train.use_gpu=true",
                           "train.resources_per_worker={trainer: 1}"])
    ok = load_config(None, [f"ray.cluster={cluster}", "stages=[solve]", "ray.actor_resources={simulate: 0.5}",
                            "llm.deployments=[{model_id: m, model_source: /m}]"])
    assert ok.ray.cluster == str(cluster)


def test_work_never_counts_on_the_head_and_max_workers_bound_the_count(tmp_path):
    cluster = _cluster(tmp_path, gpu={"CPU": 8, "GPU": 1, "vllm": 1})
    # CPU-only actors fit the head's 8 CPUs, but the head runs no work: only worker kinds count
    cpu_only = RunConfig(stages=["solve"], ray={"actor_num_cpus": 0.5})
    check_placement(cpu_only, cluster)  # they fit the gpu kind's CPUs
    heavy = RunConfig(stages=["solve"], ray={"actor_num_cpus": 12})
    with pytest.raises(PlacementError, match=r"no worker node kind .* \(gpu \{CPU: 8, GPU: 1, vllm: 1\}\)"):
        check_placement(heavy, cluster)
    three = RunConfig(stages=["solve"], llm={"deployments": [{"model_id": "m", "model_source": "/m", "min_replicas": 3}]})
    with pytest.raises(PlacementError, match=r"3 x llm.deployments m replica .* exceed what gpu hold at max_workers \(2\)"):
        check_placement(three, cluster)


def test_a_cpu_replica_reserves_its_bundle_plus_the_replica_actor():
    d = ServeDeploymentConfig(model_source="/m", gpus_per_worker=0, cpus_per_worker=1)
    assert replica_bundles(d) == [{"CPU": 2.0, "vllm": 1.0}]
    assert requests(RunConfig(stages=["sft_data"], llm={"deployments": [d]}))[0].resources == {"CPU": 2.0, "vllm": 1.0}


def test_a_missing_cluster_file_is_named(tmp_path):
    with pytest.raises(PlacementError, match="ray.cluster: nowhere.yaml not found"):
        load_config(None, ["ray.cluster=nowhere.yaml"])


def test_the_cluster_file_is_found_beside_the_config_from_any_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a job whose working dir is not the repo: configs/../cluster.yaml
    assert load_config(ROOT / "configs" / "toolalpaca.yaml").ray.cluster == "cluster.yaml"
