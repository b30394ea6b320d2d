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
    # train fed by train.data: its chain needs no sft_data before it, and the one problem is the machine's
    (["stages=[train]", "train.data=/srv/sft", "train.use_gpu=true"], "train worker (train.num_cpus_per_worker, "
     "use_gpu, resources_per_worker) asks for GPU 1 on one node"),
    (["stages=[train]", "train.data=/srv/sft", "train.num_workers=3", "train.num_cpus_per_worker=3"],
     "3 x train worker"),
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
    bad.write_text("stages: [build_toolset]\nrun: {record_timeout_s: .inf}\nray: {actor_resources: {gpu_vllm: 1}}\n")
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


# --- a cluster config: storage, credentials, agreement (against the repo's cluster.yaml, whose setup mounts
# /mnt/shared and installs flash-attn; a copy without them stands for a cluster.yaml that does not)
TOOLBENCH = str(ROOT / "configs" / "toolbench_dfsdt.yaml")
TRAIN_7B = str(ROOT / "configs" / "train_7b_zero3.yaml")
TOOLALPACA = str(ROOT / "configs" / "toolalpaca.yaml")


def deployments(**second) -> str:
    """An `llm.deployments=[...]` override of toolbench_dfsdt.yaml's two, the second changed."""
    import json
    a = {"model_id": "llama-3.1-70b-instruct", "model_source": "meta-llama/Llama-3.1-70B-Instruct",
         "tensor_parallel_size": 4}
    b = {"model_id": "llama-3.1-8b-instruct", "model_source": "meta-llama/Llama-3.1-8B-Instruct", **second}
    return f"llm.deployments={json.dumps([a, b])}"


@pytest.fixture
def hf_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_Zq7XwK2pLm9RtV4nB8cJ")


@pytest.mark.parametrize("config, overrides, expected", [
    (TOOLBENCH, ["run_dir=/data/runs/x"], "run_dir: /data/runs/x is on no storage every node sees; use an "
     "object-store URI (s3://, gs://) or a path under a mount cluster.yaml makes on every node (mounts: /mnt/shared)"),
    (TOOLBENCH, ["run_dir=runs/x"], "run_dir: runs/x is a relative path: each node resolves it in its own working dir"),
    (TOOLBENCH, ["run_dir=/home/ubuntu/toolweave/runs/x"], "run_dir: /home/ubuntu/toolweave/runs/x is under "
     "/home/ubuntu/toolweave, a copy file_mounts syncs to each node"),
    (TOOLBENCH, ["executor.cache_path=/tmp/tool_cache"], "executor.cache_path: /tmp/tool_cache is on no storage"),
    (TRAIN_7B, ["train.model=/opt/models/llama-7b", "sft.tokenizer=/opt/models/llama-7b"],
     "train.model: /opt/models/llama-7b is on no storage every node sees"),
    (TRAIN_7B, ["train.data=/scratch/sft"], "train.data: /scratch/sft is on no storage"),
    (TOOLBENCH, [deployments(model_source="/local/llama-8b")],
     "llm.deployments llama-3.1-8b-instruct model_source: /local/llama-8b is on no storage"),
])
def test_a_cluster_run_keeps_what_nodes_share_on_shared_storage(hf_token, config, overrides, expected):
    cfg, problems = check_file(config, overrides)
    assert cfg is not None and len(problems) == 1 and problems[0].startswith(expected), problems


def test_uris_mounts_hub_ids_and_read_only_copies_pass(hf_token):
    ok = ["run_dir=s3://bucket/runs/x", "executor.cache_path=gs://b/cache", "sft.tokenizer=/mnt/shared/models/t"]
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert check_file(TOOLBENCH, ok)[1] == []
    # a model read from the project's synced copy is fine; a hub id is downloaded by each node
    assert check_file(TRAIN_7B, ["train.model=/home/ubuntu/toolweave/models/m",
                                 "sft.tokenizer=/home/ubuntu/toolweave/models/m"])[1] == []
    assert check_file(TRAIN_7B, ["train.model=Qwen/Qwen2.5-7B", "sft.tokenizer=Qwen/Qwen2.5-7B"])[1] == []
    # a local run is not judged for shared storage
    assert check_file(QUICKSTART, ["run_dir=/data/x", "ray.num_cpus=8"])[1] == []


def test_credentials_are_checked_by_name_never_shown(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    [line] = check_file(TOOLBENCH)[1]
    assert line.startswith("llm.deployments llama-3.1-70b-instruct model_source meta-llama/Llama-3.1-70B-Instruct, "
                           "llm.deployments llama-3.1-8b-instruct model_source meta-llama/Llama-3.1-8B-Instruct: "
                           "gated on the Hugging Face Hub and no HF_TOKEN or HUGGING_FACE_HUB_TOKEN is set")
    [line] = check_file(TOOLALPACA)[1]
    assert line.startswith("train.model meta-llama/Llama-2-7b-hf, sft.tokenizer meta-llama/Llama-2-7b-hf: gated")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_secret_value_1234")
    assert check_file(TOOLBENCH)[1] == []
    problems = check_file(TOOLBENCH, ["run_dir=s3://bucket/runs/x"])[1]
    assert problems == ["run_dir: an s3:// path and no AWS credentials by name (AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE) nor an IamInstanceProfile "
                        "on every worker kind of the cluster file"]
    assert not any("hf_secret_value" in p for p in problems)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA_NOT_SHOWN")
    assert check_file(TOOLBENCH, ["run_dir=s3://bucket/runs/x"])[1] == problems  # the secret half is missing
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert check_file(TOOLBENCH, ["run_dir=s3://bucket/runs/x"])[1] == []
    assert check_file(TOOLBENCH, ["executor.cache_path=gs://b/c"])[1][0].startswith(
        "executor.cache_path: a gs:// path and no GOOGLE_APPLICATION_CREDENTIALS")


def test_the_sft_tokenizer_must_be_the_trained_models_at_check_time(hf_token):
    # the fault issue 20 found: toolalpaca.yaml tokenized with SmolLM2's tokenizer, training Llama 2
    [line] = check_file(TOOLALPACA, ["sft.tokenizer=smollm2"])[1]
    assert line.startswith("sft.tokenizer smollm2 is not train.model meta-llama/Llama-2-7b-hf: token ids from another")
    assert check_file(TRAIN_7B, ["sft.tokenizer=/mnt/shared/models/llama-7b/"])[1] == []  # the same dir
    assert check_file(QUICKSTART, ["ray.num_cpus=8", "sft.tokenizer=smollm2", "train.model=tiny"])[1] == []


def test_a_served_model_of_unknown_family_needs_its_tool_call_parser(hf_token):
    unknown = dict(model_id="mine", model_source="/mnt/shared/models/my-model")
    endpoint = "llm.endpoints.executor.model=mine"
    [line] = check_file(TOOLBENCH, [deployments(**unknown), endpoint])[1]
    assert line.startswith("llm.deployments mine: /mnt/shared/models/my-model is of no model family toolweave "
                           "knows (hermes, llama3, mistral, qwen2.5, smollm2): set its tool_call_parser")
    assert check_file(TOOLBENCH, [deployments(**unknown, tool_call_parser="pythonic"), endpoint])[1] == []
    # toolweave's own template is served: Hermes calls whatever the model
    assert check_file(TOOLBENCH, [deployments(**unknown, chat_template="fallback"), endpoint])[1] == []


def test_flash_attention_on_a_cluster_without_flash_attn_is_a_note_not_a_failure(tmp_path, hf_token):
    import yaml

    from toolweave.checks import check_notes
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert check_notes(check_file(TRAIN_7B)[0], TRAIN_7B) == []  # the repo's setup installs it
    cluster["setup_commands"] = [c for c in cluster["setup_commands"] if "flash-attn" not in c]
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    config = tmp_path / "train.yaml"
    config.write_text((ROOT / "configs" / "train_7b_zero3.yaml").read_text())
    cfg, problems = check_file(config, [f"ray.cluster={tmp_path / 'cluster.yaml'}"])
    assert problems == [] and check_notes(cfg, config) == [
        "note: train.attn_implementation flash_attention_2: cluster.yaml's setup installs no flash-attn, so train "
        "falls back to sdpa on its nodes"]
    out = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "check", str(config),
                          f"ray.cluster={tmp_path / 'cluster.yaml'}"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60, env={**__import__("os").environ, "HF_TOKEN": "x"})
    assert out.returncode == 0 and out.stdout.splitlines()[0].endswith("falls back to sdpa on its nodes"), out.stdout


# --- the chain: each stage's input from an earlier stage, the run dir, or a setting -------------

@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_passes_the_chain_check(name):
    from toolweave.config import load_config
    from toolweave.stages.registry import chain_problems, check_config
    cfg = load_config(ROOT / "configs" / name)
    assert chain_problems(cfg) == [] and check_config(cfg) is cfg


def test_a_stage_whose_input_nothing_provides_is_refused_naming_what_could(tmp_path):
    from toolweave.io import write_part
    from toolweave.schemas import Instruction
    from toolweave.stages.registry import check_config
    run = tmp_path / "run"
    cfg, problems = check_file(QUICKSTART, ["ray.num_cpus=8", f"run_dir={run}", "stages=[build_toolset, solve]"])
    assert problems == [f"solve reads instructions, which no stage before it writes and {run}/instructions does not "
                        "hold: add instructions before solve, or point run_dir at a run that holds instructions"]
    with pytest.raises(ValueError, match=r"^solve reads instructions, which no stage before it writes"):
        check_config(cfg)
    # the order matters: instructions after solve is too late
    assert check_file(QUICKSTART, ["ray.num_cpus=8", f"run_dir={run}", "stages=[solve, instructions]"])[1] == problems
    # a run dir holding them from an earlier run is fine
    write_part([Instruction(id="i1", text="what is the weather in Paris?", tool_ids=["weather"])],
               run / "instructions", Instruction)
    assert check_file(QUICKSTART, ["ray.num_cpus=8", f"run_dir={run}", "stages=[solve]"])[1] == []


@pytest.mark.parametrize("stages, fed_by, expected", [
    (["train"], "train.data=/srv/sft", "train reads sft, which no stage before it writes and {run}/sft does not hold: "
     "add sft_data before train, or set train.data, or point run_dir at a run that holds sft"),
    (["verify"], "verify.import_answers=[tests/data/toolbench/data_example/answer]",
     "verify reads episodes, which no stage before it writes and {run}/episodes does not hold: add simulate or solve "
     "before verify, or set verify.import_answers, or point run_dir"),
    (["build_toolset", "retriever"], "retriever.queries=[tests/data/toolbench/data_example/instruction/G1_query.json]",
     "retriever reads instructions, which no stage before it writes and {run}/instructions does not hold: add "
     "instructions before retriever, or set retriever.queries, or point"),
    # sft_data takes verified episodes, else plain ones: either provider is named, the run dir holds neither
    (["sft_data"], None, "sft_data reads verified_episodes or episodes, which no stage before it writes and the run "
     "dir {run} holds none of them: add simulate, solve or verify before sft_data, or point"),
])
def test_a_setting_may_feed_the_input_instead(tmp_path, stages, fed_by, expected):
    run = tmp_path / "run"
    on = ["ray.num_cpus=8", f"run_dir={run}", f"stages=[{', '.join(stages)}]", "verify.require=[]",
          "verify.import_answers=[]"]  # quickstart's own imports: unset
    problems = check_file(QUICKSTART, on)[1]
    assert len(problems) == 1 and problems[0].startswith(expected.format(run=run)), problems
    if fed_by:
        assert check_file(QUICKSTART, [*on, fed_by])[1] == []


def test_evaluate_reads_the_test_instructions_when_it_solves_else_the_episodes(tmp_path):
    run = tmp_path / "run"
    on = ["ray.num_cpus=8", f"run_dir={run}", "stages=[evaluate]", "train.data=/srv/sft"]
    [solving] = check_file(QUICKSTART, on)[1]  # quickstart's evaluate solves with the trained model
    assert solving.startswith("evaluate reads instructions, which no stage before it writes")
    [judging] = check_file(QUICKSTART, [*on, "evaluate.solve_with=null"])[1]
    assert judging.startswith("evaluate reads eval_episodes or episodes, which no stage before it writes")
    # solve's episodes feed it: what is left is solve's own input
    [line] = check_file(QUICKSTART, [*on, "evaluate.solve_with=null", "stages=[solve, evaluate]"])[1]
    assert line.startswith("solve reads instructions")
