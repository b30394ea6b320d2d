"""`toolweave check`: values that load but cannot run, and work the local machine cannot hold, are
refused before any job starts, one line per problem naming the key."""
import subprocess
import sys
from pathlib import Path

import pytest

from toolweave.checks import check_file

ROOT = Path(__file__).parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


@pytest.fixture(autouse=True)
def a_local_machine(monkeypatch):
    """A run on this machine (no cluster joined), without GPUs."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.mark.parametrize("overrides, expected", [
    (["run.record_timeout_s=.inf"], ["run.record_timeout_s: inf is not a finite number"]),
    (["executor.timeout_s=inf"], ["executor.timeout_s: Input should be a finite number"]),
    (["llm.endpoints.default.timeout_s=.nan"], ["llm.endpoints.default.timeout_s: nan is not a finite number"]),
    (["train.ds_config={zero_optimization: {stage3_max_live_parameters: .inf}}"],
     ["train.ds_config.zero_optimization.stage3_max_live_parameters: inf is not a finite number"]),
    (["run.max_in_flight=1000000000000"], ["run.max_in_flight: 1000000000000 is out of range; allowed: >= 1 and <= 100000"]),
    (["seed=4294967296"], ["seed: 4294967296 is out of range; allowed: >= 0 and <= 4294967295"]),
    (["solve.seed=9223372036854775808"], ["solve.seed: 9223372036854775808 is past what int64 holds"]),
    # two problems, two lines, each key once
    (["run.record_timeout_s=.inf", "seed=-1"], ["run.record_timeout_s: inf is not", "seed: -1 is out of range"]),
])
def test_values_that_load_but_cannot_run_are_refused_with_their_key(overrides, expected):
    cfg, problems = check_file(QUICKSTART, overrides)
    assert cfg is None and len(problems) == len(expected), problems
    assert all(p.startswith(e) for p, e in zip(problems, expected)), problems


def test_bounds_hold_at_their_edge():
    cfg, problems = check_file(QUICKSTART, ["seed=4294967295", "solve.seed=9223372036854775807",
                                            "run.max_in_flight=100000"])
    assert problems == [] and cfg.seed == 2**32 - 1


@pytest.mark.parametrize("overrides, expected", [
    (["ray.actor_resources={simulate: 0.01}"], "episode actor (ray.actor_num_cpus, ray.actor_resources) asks for "
     "simulate 0.01, a resource no node has: this machine's local Ray instance has {CPU 8, GPU 0}"),
    (["ray.actor_num_cpus=12"], "episode actor (ray.actor_num_cpus, ray.actor_resources) asks for CPU 12 on one node; "
     "this machine's local Ray instance has {CPU 8, GPU 0}"),
    (["stages=[train]", "train.use_gpu=true"], "train worker (train.num_cpus_per_worker, use_gpu, resources_per_worker) "
     "asks for GPU 1 on one node"),
    (["stages=[train]", "train.num_workers=3", "train.num_cpus_per_worker=3"], "3 x train worker"),
    (["ray.max_actors=2", "ray.actor_num_cpus=4"], "ray.max_actors 2 x ray.actor_num_cpus 4 = 8 CPUs hold all 8"),
])
def test_work_the_local_machine_cannot_hold_is_refused(overrides, expected):
    cfg, problems = check_file(QUICKSTART, ["ray.num_cpus=8", *overrides])
    assert cfg is not None and len(problems) == 1 and problems[0].startswith(expected), problems


def test_resources_are_not_judged_by_this_machine_when_the_run_joins_a_cluster(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert check_file(QUICKSTART, ["ray.actor_resources={simulate: 0.01}", "ray.actor_num_cpus=64"])[1] == []


def test_a_stage_job_is_checked_for_its_own_stage():
    # the chain's order is the run's business; the resources of the stage the job runs are its own
    overrides = ["stages=[solve, sft_data]", "ray.num_cpus=8"]
    assert check_file(QUICKSTART, overrides)[1][0].startswith("sft_data: verify.require is")
    assert check_file(QUICKSTART, overrides, stages=["solve"])[1] == []
    assert "asks for GPU 1" in check_file(QUICKSTART, [*overrides, "train.use_gpu=true"], stages=["train"])[1][0]


def test_the_check_command_prints_one_line_per_problem_or_ok(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [solve]\nrun: {record_timeout_s: .inf}\nray: {actor_resources: {gpu_vllm: 1}}\n")
    cmd = [sys.executable, "-m", "ray_jobs.cli", "check"]
    out = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and out.stderr == "", out.stderr
    assert out.stdout.splitlines() == [f"{bad}: run.record_timeout_s: inf is not a finite number (the config "
                                       "reaches actors as JSON, which has none)"]
    out = subprocess.run([*cmd, str(bad), "run.record_timeout_s=30", "ray.num_cpus=4"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    [line] = out.stdout.splitlines()
    assert out.returncode == 1 and "asks for gpu_vllm 1, a resource no node has" in line and "{CPU 4," in line
    out = subprocess.run([*cmd, QUICKSTART], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith(f"{QUICKSTART}: ok"), out.stdout + out.stderr
