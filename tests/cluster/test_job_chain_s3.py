"""`ray job submit` of a scaled-down toolbench_dfsdt chain (instructions -> solve -> sft_data -> train
-> evaluate) to a multi-node local cluster, with the run dir in an S3-compatible object store (moto's
server on 127.0.0.1). The head carries no CPU for work (as cluster.yaml's); a `simulate` node runs
the episode actors, a `trainer` node the Ray Train worker. The generation, executor and judge roles
are a scripted OpenAI-compatible server; the model under test is the tiny model the chain trained,
fetched from the bucket and served by the embedded vLLM engine on the job's driver. The credentials
and the endpoint reach the job only through its runtime_env (the cluster starts without them)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import local_cluster, node_id
from toolweave import io
from toolweave.testing.fake_llm import tool_call
from toolweave.testing.scripted_server import ScriptedServer

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).parents[2]
DATASETS = ("toolsets", "instructions", "episodes", "sft", "eval_episodes", "eval")
JOB_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE": "1",
           "RAY_AUTH_MODE": "disabled"}


GENERATED = "Scripted query: call {api} of {tool} for order 42."


def scripted_roles(body: dict) -> str | dict:
    """Every role of the chain: the instruction writer asks for the first API of its prompt; the
    judge answers Solved; the DFSDT assistant calls one API, then Finish; the executor (simulated
    APIs) gets a plain JSON reply."""
    names = [t["function"]["name"] for t in body.get("tools") or []]
    prompt = str(body["messages"][-1].get("content")).rpartition("Now the APIs for you:")[2]  # past the examples
    if '"queries"' in prompt and (api := re.search(r'"tool_name": "([^"]+)", "api_name": "([^"]+)"', prompt)):
        tool, name = api.groups()
        return json.dumps({"queries": [{"query": GENERATED.format(api=name, tool=tool),
                                        "related apis": [[tool, name]]}]})
    if "check_answer_status" in names or "parse_answer_status" in names:
        return {"tool_calls": [tool_call(names[0], {"answer_status": "Solved", "reason": "scripted"})]}
    if "check_task_solvable" in names:
        return {"tool_calls": [tool_call(names[0], {"task_status": "Solvable", "reason": "scripted"})]}
    if "Finish" in names:
        apis = [n for n in names if n != "Finish"]
        if apis and not any(m.get("role") == "tool" for m in body["messages"]):
            return {"tool_calls": [tool_call(apis[0], {})]}
        return {"tool_calls": [tool_call("Finish", {"return_type": "give_answer", "final_answer": "Done: 42."})]}
    return '{"error": "", "response": "scripted"}'


def chain_config(run_dir: str, llm_url: str) -> dict:
    """configs/toolbench_dfsdt.yaml scaled down: its stages from instructions to evaluate, the
    imported G1 queries, a tiny model trained one step."""
    return {
        "name": "toolbench_dfsdt_s3", "run_dir": run_dir, "seed": 0,
        "stages": ["instructions", "solve", "sft_data", "train", "evaluate"],
        "llm": {"engine": "endpoints", "temperature": 0.0, "max_tokens": 48,
                "endpoints": {"default": {"base_url": llm_url, "model": "scripted", "is_vllm": False,
                                          "max_retries": 0}},
                "embedded": {"dtype": "float32", "max_model_len": 1024}},
        "ray": {"actor_num_cpus": 0.25, "actor_resources": {"simulate": 0.5}, "min_actors": 1, "max_actors": 1},
        "run": {"show_progress": False, "limit": 3, "batch_size": 4, "max_in_flight": 8},
        "instructions": {"style": "toolbench", "modes": ["I1"], "samples_per_mode": 1, "per_sample": 1,
                         "import_queries": ["tests/data/stabletoolbench/solvable_queries/G1_instruction.json"],
                         "holdout": {"test_inst": 0.25, "test_tool": 0.0, "test_cat": 0.0}},
        "solve": {"method": "dfsdt", "width": 1, "max_steps": 3, "max_llm_calls": 4, "splits": ["train"]},
        "executor": {"kind": "llm", "observation_limit": 512},
        "verify": {"require": []},  # no verify stage in this chain: train on the episodes as they are
        "sft": {"format": "toolllama", "max_len": 1024, "truncate": True, "pack": False},
        # head_dim 64: vLLM's CPU attention has no kernel for the default tiny model's 16
        "train": {"model": "tiny", "tiny": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                                            "num_attention_heads": 2, "num_key_value_heads": 2}, "max_len": 1024, "num_workers": 1, "num_cpus_per_worker": 0.25,
                  "resources_per_worker": {"trainer": 1}, "zero_stage": 3, "max_steps": 1, "checkpoint_every": 1},
        "evaluate": {"solve_with": "trained", "splits": ["test_inst"], "votes": 1, "concurrency": 2},
    }


def job_actors() -> list:
    from ray.util.state import list_actors
    return list_actors(limit=1000, detail=True)


def test_submitted_toolbench_chain_runs_on_the_cluster_with_its_run_dir_in_s3(tmp_path):
    from toolweave.testing.object_store import moto_s3
    t0 = time.monotonic()
    # each node its own runtime-env dir: in one session dir, a node unpacking the job's working dir
    # would replace the one the driver runs in (its cwd gone, torch's MKL then fails to load)
    nodes_spec = {"simulate": {"num_cpus": 2, "resources": {"simulate": 2}, "runtime_env_dir_name": "runtime_resources_sim"},
                  "trainer": {"num_cpus": 1, "resources": {"trainer": 1}, "runtime_env_dir_name": "runtime_resources_trainer"}}
    # the cluster first: its processes never see the AWS_* variables moto_s3 sets in this process
    with local_cluster(head_cpus=0, **nodes_spec) as (cluster, nodes), moto_s3() as root, \
            ScriptedServer(handler=scripted_roles) as srv:
        run_dir = f"{root}/runs/{tmp_path.name}"
        session_dir = Path(cluster.head_node.get_session_dir_path())
        config = tmp_path / "toolbench_dfsdt_s3.yaml"
        config.write_text(yaml.safe_dump(chain_config(run_dir, srv.base_url)))
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}  # moto's fake keys and endpoint
        bin_dir = Path(sys.executable).parent
        path = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}  # this environment's `toolweave` and `python`
        deadline = time.monotonic() + 120
        while True:  # the head's job agent comes up some seconds after the node
            job = subprocess.run(
                [bin_dir / "ray", "job", "submit", "--address", f"http://{cluster.webui_url}",
                 "--working-dir", str(ROOT), "--runtime-env-json", json.dumps({"env_vars": {**JOB_ENV, **aws, **path}}),
                 "--", "toolweave", "run", str(config)],
                env={**os.environ, **path, "RAY_AUTH_MODE": "disabled"},
                capture_output=True, text=True, timeout=900)
            if "No available agent" not in job.stderr + job.stdout or time.monotonic() > deadline:
                break
            time.sleep(3)
        wall = time.monotonic() - t0
        print(f"chain job: {wall:.0f} s after the cluster started", file=sys.stderr)
        log = io.read_text(io.join(run_dir, "logs", "toolweave.log")) or ""  # the run's own log, uploaded at its end
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-2000:] + log[-4000:]
        assert "succeeded" in job.stdout.lower()

        for name in DATASETS:
            rows = list(io.iter_rows(io.join(run_dir, name)))
            assert rows, f"{name}/ has no rows in the bucket"
        texts = [r["text"] for r in io.iter_rows(io.join(run_dir, "instructions"), columns=["text"])]
        assert any(t.startswith("Scripted query: ") for t in texts) and len(texts) > 100  # generated + imported
        model_files = io.files_under(io.join(run_dir, "model"))
        assert {"config.json", "model.safetensors", "toolweave_train.json"} <= set(model_files)
        chain = json.loads(io.read_text(io.join(run_dir, "run_summary.json")))
        assert chain["train"]["model_dir"] == f"{run_dir}/model" and chain["train"]["step"] == 1
        assert chain["train"]["checkpoint"].startswith(f"{run_dir}/train/")  # Ray Train's storage: the bucket
        assert io.files_under(chain["train"]["checkpoint"])
        solved = chain["evaluate"]["solve"]
        assert solved["processed"] >= 1 and solved["served_on"] == "embedded" and solved["served_name"] == "trained"
        assert not io.is_remote(solved["model"])  # served from the local copy fetched from the bucket
        summary = json.loads(io.read_text(io.join(run_dir, "report", "summary.json")))
        assert summary["under_test"]["solve_with"] == "trained" and summary["under_test"]["models"] == ["trained"]
        assert "trained" in summary["title"]
        assert {r["model"] for r in io.iter_rows(io.join(run_dir, "eval_episodes"), columns=["model"])} == {"trained"}

        # where the work ran, from Ray's own records: episode actors on the simulate node, the
        # train worker on the trainer node (the head has no CPU to give)
        kinds = {node_id(n): kind for kind, n in nodes.items()}
        actors = job_actors()
        episode_actors = [a for a in actors if "MapWorker" in (a.class_name or "")]
        train_workers = [a for a in actors if "TrainWorker" in (a.class_name or "")]
        assert episode_actors and {kinds.get(a.node_id) for a in episode_actors} == {"simulate"}
        assert train_workers and {kinds.get(a.node_id) for a in train_workers} == {"trainer"}

    # nothing went to a local "s3:" dir (a URI taken for a path), neither here nor in the job's working dir
    assert not (ROOT / "s3:").exists() and not list(session_dir.rglob("s3:"))
