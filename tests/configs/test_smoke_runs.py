"""Every file of configs/ run as `--smoke` scales it (toolweave/smoke.py), as a user runs it: cluster
configs (`ray.cluster: cluster.yaml`) are submitted with `ray job submit` to one local multi-node cluster
(cluster.yaml's kinds: a head with no CPU for work, a `simulate` and a `trainer` node) with run_dir in
moto's S3 (credentials only in the job's runtime_env); the others run with `python -m ray_jobs.cli` on
the local Ray they start. Configs without `stages:` run the stage jobs their header names. LLM roles are
the scripted server (tests/configs/scripted_roles.py) where the engine is not what is tested, SmolLM2 on
the embedded engine (quickstart) or in the run's own Serve LLM app (gpu_check, on the CPU).

SMOKE_RUNS (bottom) names the test of each config; test_smoke_transform.py fails for a config without one.
One cluster for the module (~30 s to start here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.conftest import local_cluster
from toolweave import io

pytestmark = [pytest.mark.configs, pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE": "1",
       "RAY_AUTH_MODE": "disabled"}


@dataclass
class SmokeCluster:
    cluster: object
    kinds: dict[str, str]  # node id -> kind
    bucket: str            # s3://...
    llm_url: str           # the scripted roles


@pytest.fixture(scope="module")
def smoke_cluster():
    from tests.configs.scripted_roles import scripted_roles
    from toolweave.testing.object_store import moto_s3
    from toolweave.testing.scripted_server import ScriptedServer
    # each node its own runtime-env dir: a node unpacking the job's working dir in the driver's
    # session dir would replace the one the driver runs in
    kinds = {"simulate": {"num_cpus": 2, "resources": {"simulate": 2}, "runtime_env_dir_name": "runtime_resources_sim"},
             "trainer": {"num_cpus": 1, "resources": {"trainer": 1}, "runtime_env_dir_name": "runtime_resources_trainer"}}
    # the cluster first: its processes never see the AWS_* variables moto_s3 sets in this process
    with local_cluster(head_cpus=0, connect=False, **kinds) as (cluster, nodes), moto_s3() as bucket, \
            ScriptedServer(handler=scripted_roles) as srv:
        yield SmokeCluster(cluster, {n.node_id: k for k, n in nodes.items()}, bucket, srv.base_url)


def submit(smoke: SmokeCluster, entrypoint: str) -> subprocess.CompletedProcess:
    """`ray job submit --working-dir ROOT -- sh -c ENTRYPOINT`; moto's keys reach the job only here."""
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    path = {"PATH": f"{BIN}:{os.environ['PATH']}"}  # this environment's `toolweave` and `python`
    deadline = time.monotonic() + 120
    while True:  # the head's job agent comes up some seconds after the node
        job = subprocess.run(
            [BIN / "ray", "job", "submit", "--address", f"http://{smoke.cluster.webui_url}", "--working-dir",
             str(ROOT), "--runtime-env-json", json.dumps({"env_vars": {**ENV, **aws, **path}}),
             "--", "sh", "-c", entrypoint],
            env={**os.environ, **path, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=900)
        if "No available agent" not in job.stderr + job.stdout or time.monotonic() > deadline:
            return job
        time.sleep(3)


G1_EXAMPLE = "tests/data/toolbench/data_example/instruction/G1_query.json"


def run_local(*args: str) -> subprocess.CompletedProcess:
    """A CLI command on this machine's own local Ray (no cluster address)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env={**env, **ENV}, capture_output=True,
                          text=True, timeout=1200)


def ok(proc: subprocess.CompletedProcess, run_dir: str) -> None:
    log = io.read_text(io.join(run_dir, "logs", "toolweave.log")) or ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:] + log[-4000:]


def actors_by_kind(smoke: SmokeCluster, class_part: str) -> set[str]:
    """The node kinds every actor of that class ran on (dead ones too), from Ray's state API."""
    from ray.util.state import list_actors
    actors = list_actors(address=smoke.cluster.address, limit=10_000, detail=True, raise_on_missing_output=False)
    return {smoke.kinds.get(a.node_id, "head") for a in actors if class_part in (a.class_name or "")}


def rows(run_dir: str, name: str) -> list[dict]:
    return list(io.iter_rows(io.join(run_dir, name)))


def seed_episodes(run_dir: str) -> None:
    """The 15 real ToolBench DFSDT answers: the episodes a data run leaves for the train configs."""
    from tests.training.conftest import toolbench_example_episodes
    from toolweave.schemas import Episode
    io.write_part(toolbench_example_episodes(), io.join(run_dir, "episodes"), Episode)


def smoke_args(llm_url: str | None = None, cpu: bool = False) -> str:
    return " ".join(["--smoke", *(["--smoke-cpu"] if cpu else []), *([f"--smoke-llm {llm_url}"] if llm_url else [])])


def run_config(smoke: SmokeCluster, tmp_path, config: str, overrides: str = "") -> tuple[str, dict]:
    """`toolweave run configs/CONFIG --smoke --smoke-cpu` (the scripted roles) into the bucket; the
    run dir the smoke run wrote (`-smoke` appended) and its run summary."""
    run_dir = f"{smoke.bucket}/runs/{tmp_path.name}"
    ok(submit(smoke, f"toolweave run configs/{config} run_dir={run_dir} run.show_progress=false {overrides} "
                     f"{smoke_args(smoke.llm_url, cpu=True)}"), run_dir + "-smoke")
    return run_dir + "-smoke", json.loads(io.read_text(io.join(run_dir + "-smoke", "run_summary.json")))


# --- cluster configs ----------------------------------------------------------------------------

def test_toolbench_dfsdt(smoke_cluster, tmp_path):
    # the retriever also reads ToolBench's 5 example G1 queries: the scripted instructions name no API of
    # the corpus, so without them it has no training pair (a real run trains on its model's instructions);
    # StableToolBench's 163 would spend minutes encoding their 810 APIs on the CPU
    run_dir, summary = run_config(smoke_cluster, tmp_path, "toolbench_dfsdt.yaml", f"retriever.queries=[{G1_EXAMPLE}]")
    assert list(summary)[:7] == ["build_toolset", "instructions", "solve", "verify", "sft_data", "export", "retriever"]
    for name in ("toolsets", "instructions", "episodes", "verified_episodes"):
        assert rows(run_dir, name), f"{name}/ has no rows in the bucket"
    # sft_data ran over them: each verified episode is an SFT row or a reject with its reason
    assert rows(run_dir, "sft") or rows(run_dir, "sft_rejects"), "sft_data wrote nothing to the bucket"
    texts = [r["text"] for r in rows(run_dir, "instructions")]
    assert any(t.startswith("Scripted query: ") for t in texts)
    assert json.loads(io.read_text(io.join(run_dir, "retriever", "report.json")))
    assert actors_by_kind(smoke_cluster, "MapWorker") == {"simulate"}  # ray.actor_resources kept


def test_toolalpaca(smoke_cluster, tmp_path):
    """The ToolAlpaca chain (the preset's ReAct agents, simulator, toolalpaca_v1 rows) through train."""
    run_dir, summary = run_config(smoke_cluster, tmp_path, "toolalpaca.yaml")
    assert list(summary)[:7] == ["build_toolset", "instructions", "simulate", "verify", "sft_data", "export", "train"]
    for name in ("catalogue", "toolsets", "instructions", "episodes", "verified_episodes", "sft"):
        assert rows(run_dir, name), f"{name}/ has no rows in the bucket"
    assert {r["status"] for r in rows(run_dir, "episodes")} == {"answered"}
    assert summary["train"]["step"] == 1 and summary["train"]["model_dir"] == f"{run_dir}/model"
    assert actors_by_kind(smoke_cluster, "MapWorker") == {"simulate"}
    assert actors_by_kind(smoke_cluster, "TrainWorker") == {"trainer"}


def test_toolalpaca_eval(smoke_cluster, tmp_path):
    """ToolAlpaca's eval sets imported as test cases, solved by SmolLM2 (standing in for the trained
    model) in the run's own Serve app on the CPU, judged with ToolAlpaca's scoring."""
    # the shipped SmolLM2 by name: each Serve replica resolves it on its node (a local path is refused:
    # a cluster's nodes would not see it)
    run_dir, summary = run_config(smoke_cluster, tmp_path, "toolalpaca_eval.yaml", "evaluate.solve_with=smollm2")
    assert list(summary)[:2] == ["instructions", "evaluate"]
    assert (summary["instructions"]["imported_eval_cases"], summary["instructions"]["imported_eval_tools"]) == (214, 21)
    assert {r["split"] for r in rows(run_dir, "instructions")} == {"test_tool"}
    assert summary["evaluate"]["solve"]["processed"] >= 1
    assert "toolalpaca" in {r["metric"] for r in rows(run_dir, "eval")}


def _train_job(smoke_cluster, tmp_path, config: str) -> str:
    run_dir = f"{smoke_cluster.bucket}/runs/{tmp_path.name}"
    seed_episodes(f"{run_dir}-smoke")
    args = f"--config {config} run_dir={run_dir} run.show_progress=false"
    # the train configs read sft/ that a data run made: made here from the seeded episodes, cut at the
    # smoke length (whole, the real answers are longer than its 1024 tokens in these formats)
    job = submit(smoke_cluster, f"python -m ray_jobs.sft_data {args} verify.require=[] sft.truncate=true "
                                f"{smoke_args(cpu=True)} && "
                                f"python -m ray_jobs.train {args} {smoke_args(cpu=True)}")
    run_dir += "-smoke"
    ok(job, run_dir)
    assert rows(run_dir, "sft")
    assert {"config.json", "model.safetensors", "toolweave_train.json"} <= set(io.files_under(io.join(run_dir, "model")))
    assert actors_by_kind(smoke_cluster, "TrainWorker") == {"trainer"}  # train.resources_per_worker kept
    return run_dir


def test_train_7b_zero3(smoke_cluster, tmp_path):
    _train_job(smoke_cluster, tmp_path, "configs/train_7b_zero3.yaml")


def test_train_13b_zero3(smoke_cluster, tmp_path):
    _train_job(smoke_cluster, tmp_path, "configs/train_13b_zero3.yaml")


# --- local configs ------------------------------------------------------------------------------

def test_train_tiny_then_sweep(tmp_path):
    """train_tiny.yaml's two stage jobs, then sweep.yaml on the SFT rows they left (as its header says)."""
    base = str(tmp_path / "tiny")
    run_dir = f"{base}-smoke"
    seed_episodes(run_dir)
    for module, config in (("ray_jobs.sft_data", "train_tiny"), ("ray_jobs.train", "train_tiny"),
                           ("ray_jobs.sweep", "sweep")):
        ok(run_local(module, "--config", f"configs/{config}.yaml", f"run_dir={base}", "run.show_progress=false",
                     "--smoke"), run_dir)
    assert (Path(run_dir) / "model" / "config.json").is_file()
    results = json.loads((Path(run_dir) / "sweep" / "results.json").read_text())
    assert len(results) == 1 and results[0]["checkpoint"] and not results[0]["error"]


def test_quickstart(tmp_path, embedded_base_url):
    """The whole chain, ending with the evaluation of the model it trained (served by a second engine);
    the LLM roles are the session's SmolLM2 engine. SmolLM2's episodes are verified beside the imported
    real ChatGPT answers; sft/ holds only episodes that passed `verify.require`."""
    from toolweave.config import VerifyConfig
    from toolweave.io import read_records
    from toolweave.schemas import Episode, SFTExample, VerifiedEpisode
    from toolweave.curation.verify import sft_exclusion
    proc = run_local("ray_jobs.cli", "run", "configs/quickstart.yaml", f"run_dir={tmp_path / 'qs'}",
                     "run.show_progress=false", "llm.endpoints.default.timeout_s=600", "--smoke",
                     "--smoke-llm", embedded_base_url)
    run = tmp_path / "qs-smoke"
    ok(proc, str(run))
    results = json.loads((run / "run_summary.json").read_text())
    assert list(results)[:10] == ["build_toolset", "instructions", "simulate", "solve", "verify", "sft_data",
                                  "export", "train", "retriever", "evaluate"]
    for name in ("catalogue", "toolsets", "instructions", "episodes", "verified_episodes", "sft", "eval_episodes",
                 "eval"):
        assert rows(str(run), name), f"{name}/ is empty"
    assert (run / "model" / "config.json").is_file() and (run / "model" / "chat_template.jinja").is_file()
    assert json.loads((run / "retriever" / "report.json").read_text())
    verify = VerifyConfig(require=["format", "execution"])  # quickstart.yaml's
    checked = {v.id: v for v in read_records(run / "verified_episodes", VerifiedEpisode)[0]}
    assert set(checked) == {e.id for e in read_records(run / "episodes", Episode)[0]}  # run.limit does not cut verify
    assert results["verify"]["imported_answers"] == 15
    assert [v for v in checked.values() if v.model == "smollm2"]
    trained = {e for r in read_records(run / "sft", SFTExample)[0] for e in r.episode_ids}
    assert trained and all(e in checked and sft_exclusion(checked[e], verify) is None for e in trained)
    card = (run / "dataset" / "README.md").read_text()
    assert card.startswith("---\n") and "## Verification" in card
    for name in ("sharegpt.jsonl", "openai_finetune.jsonl", "toolalpaca.json"):
        assert (run / "export" / name).is_file(), name
    assert "<table id=verification>" in (run / "report" / "report.html").read_text()  # the front page
    solved = results["evaluate"]["solve"]
    assert solved["model"] == str(run / "model") and solved["processed"] >= 1
    assert {r["model"] for r in rows(str(run), "eval_episodes")} == {"trained"}
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["under_test"]["solve_with"] == "trained" and "trained" in summary["title"]
    assert (run / "report" / "pass_rate.png").is_file()


def test_gpu_check_on_the_cpu(tmp_path):
    """gpu_check.yaml's chain with its own Serve LLM app (deploy_app as the run calls it, nothing
    patched): one SmolLM2 replica, moved to the CPU by the smoke transformation (no GPU here)."""
    # ToolBench's G1 queries imported beside SmolLM2's instructions: its replies are often cut off at the
    # smoke token cap, and solve needs at least one instruction to solve
    proc = run_local("ray_jobs.cli", "run", "configs/gpu_check.yaml", f"run_dir={tmp_path / 'gc'}",
                     "run.show_progress=false", f"instructions.import_queries=[{G1_EXAMPLE}]", "--smoke")
    run = tmp_path / "gc-smoke"
    ok(proc, str(run))
    results = json.loads((run / "run_summary.json").read_text())
    assert list(results)[:3] == ["build_toolset", "instructions", "solve"]
    assert rows(str(run), "instructions") and results["solve"]["processed"] >= 1
    assert {r["model"] for r in rows(str(run), "episodes")} == {"smollm2"}
    assert "tw-gpu-check" in proc.stdout + proc.stderr  # the run's own Serve app's route


SMOKE_RUNS = {
    "toolbench_dfsdt.yaml": test_toolbench_dfsdt,
    "toolalpaca.yaml": test_toolalpaca,
    "toolalpaca_eval.yaml": test_toolalpaca_eval,
    "train_7b_zero3.yaml": test_train_7b_zero3,
    "train_13b_zero3.yaml": test_train_13b_zero3,
    "train_tiny.yaml": test_train_tiny_then_sweep,
    "sweep.yaml": test_train_tiny_then_sweep,
    "quickstart.yaml": test_quickstart,
    "gpu_check.yaml": test_gpu_check_on_the_cpu,
}
