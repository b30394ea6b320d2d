"""cluster.yaml: valid for the installed Ray's cluster launcher, and each kind of work has a home."""
import json
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from toolweave.config import load_config

ROOT = Path(__file__).parents[1]


def _cluster() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_rays_launcher_schema():
    schema = json.loads(resources.files("ray.autoscaler").joinpath("ray-schema.json").read_text())
    jsonschema.validate(_cluster(), schema)


def test_node_types_carry_the_custom_resources_the_configs_ask_for():
    c = _cluster()
    types = c["available_node_types"]
    assert c["head_node_type"] in types and c["idle_timeout_minutes"] > 0
    by_resource = {r: name for name, t in types.items() for r in t["resources"] if r not in ("CPU", "GPU")}
    assert {"simulate", "vllm", "trainer"} <= set(by_resource)
    assert "GPU" not in types[by_resource["simulate"]]["resources"]
    assert types[by_resource["vllm"]]["resources"]["GPU"] >= 1
    assert types[by_resource["trainer"]]["resources"]["GPU"] >= 1
    for name, t in types.items():  # workers autoscale from zero
        if name != c["head_node_type"]:
            assert t["min_workers"] == 0 < t["max_workers"]
    assert any("pip install" in cmd and "[gpu,train]" in cmd for cmd in c["setup_commands"])
    # the cluster config's episode actors ask for a resource that only simulation nodes have
    cfg = load_config(ROOT / "configs" / "toolbench_dfsdt.yaml")
    assert set(cfg.ray.actor_resources) <= {"simulate"} and cfg.ray.actor_resources


def test_the_head_runs_no_work_and_a_vllm_kind_holds_tensor_parallel_4():
    c = _cluster()
    assert c["available_node_types"][c["head_node_type"]]["resources"] == {"CPU": 0}
    assert any("--num-cpus=0" in cmd for cmd in c["head_start_ray_commands"])
    vllm_kinds = [t["resources"] for t in c["available_node_types"].values() if "vllm" in t["resources"]]
    assert all(r["vllm"] == r["GPU"] for r in vllm_kinds)  # one `vllm` unit a GPU: a bundle asks for both
    assert max(r["GPU"] for r in vllm_kinds) >= 4
