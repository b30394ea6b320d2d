"""`toolweave plan`: placement per node kind of cluster.yaml and the cost on paper, from the run dir's own
summaries where it has them, else from the published figures (named as such)."""
import json
import subprocess
import sys
from pathlib import Path

from toolweave.config import load_config
from toolweave.plan import TOOLBENCH_TOKENS_PER_INSTANCE, plan_lines, size_class

ROOT = Path(__file__).parents[2]
TOOLBENCH = ROOT / "configs" / "toolbench_dfsdt.yaml"


def _plan(overrides=(), path=TOOLBENCH):
    return plan_lines(load_config(path, list(overrides)), path)


def test_toolbench_placement_per_node_kind():
    lines = _plan()
    assert lines[0].startswith("placement on ") and lines[0].split()[2].endswith("cluster.yaml")
    actors, big, small = lines[1:4]
    # 0.5 simulate a actor on 16: 32 a node; 40 actors at most need 2 nodes
    assert "episode actors x 2-40" in actors and "-> cpu_simulation" in actors and "32 a node: 1-2 nodes" in actors
    # the 70B's four TP bundles (the replica actor's CPU in the first) on one 4-GPU node each
    assert "llama-3.1-70b-instruct replicas (TP 4) x 2-8 {CPU 5, vllm 4, GPU 4} -> gpu_vllm_x4" in big
    assert "2-8 nodes, 8-32 GPUs" in big and "bundles {CPU 2, vllm 1, GPU 1} + {CPU 1, vllm 1, GPU 1}" in big
    # the 8B goes to the one-GPU kind, not a quarter of the 4-GPU one
    assert "llama-3.1-8b-instruct replicas (TP 1) x 1-8" in small and "-> gpu_vllm {" in small


def test_published_cost_is_named_and_follows_the_configured_counts():
    lines = _plan()
    text = "\n".join(lines)
    assert "episodes: 20,000 (instructions.modes 2 x samples_per_mode 2000 x per_sample 5)" in text
    assert "[published: ToolBench's" in text and "tokens: 0.969 B" in text  # 20,000 x 48,470
    [h200] = [line for line in lines if "on H200" in line]
    replica_h = 20_000 * TOOLBENCH_TOKENS_PER_INSTANCE / 4910 / 3600
    assert f"{replica_h:,.0f} replica-h, {replica_h * 4:,.0f} GPU-h" in h200 and "published: vLLM" in h200
    assert f"wall {replica_h / 8:,.1f} h at max_replicas 8" in h200
    # half the samples: half the hours
    [half] = [line for line in _plan(["instructions.samples_per_mode=1000"]) if "on H200" in line]
    assert f"{replica_h / 2:,.0f} replica-h" in half


def test_the_run_dirs_own_figures_win(tmp_path):
    (tmp_path / "solve_summary.json").write_text(json.dumps(
        {"processed": 40, "prompt_tokens": 360_000, "completion_tokens": 40_000, "llm_calls": 400, "elapsed_s": 80}))
    lines = _plan([f"run_dir={tmp_path}"])
    text = "\n".join(lines)
    assert f"per episode: 10,000 tokens, 10.0 LLM calls [{tmp_path / 'solve_summary.json'} (40 episodes)]" in text
    assert "tokens: 0.2 B" in text and "measured wall time: 2.0 s an episode" in text
    assert "published: ToolBench" not in text


def test_a_model_size_without_a_published_row_is_said():
    assert (size_class("meta-llama/Llama-3.1-70B-Instruct"), size_class("qwen2.5-72b-instruct"),
            size_class("llama-3.1-8b-instruct"), size_class("/mnt/shared/models/llama-13b")) == ("70B", "70B", "8B", None)
    deployments = json.dumps([{"model_id": "llama-3.1-70b-instruct", "model_source": "/m/llama-13b"},
                              {"model_id": "llama-3.1-8b-instruct", "model_source": "/m/x"}])
    lines = _plan([f"llm.deployments={deployments}"])
    assert any("of no size the published table has" in line for line in lines), lines


def test_the_plan_command_prints_placement_and_hours():
    out = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "plan", str(TOOLBENCH)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "gpu_vllm_x4" in out.stdout and "GPU-h" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "plan", str(TOOLBENCH), "ray.max_actors=0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 1 and "ray.max_actors: 0 is out of range" in bad.stdout and "Traceback" not in bad.stderr


def test_the_plan_places_what_the_stages_declare():
    # verify is per record: its actors are placed (it was missing from a hand-kept list); export places none
    def placed(stages):
        lines = _plan([f"stages=[{stages}]"])
        placement = lines[1:next(i for i, line in enumerate(lines) if line.startswith("cost on paper"))]
        return [line.split(" x ")[0].strip() for line in placement]
    assert placed("verify") == ["episode actors", "llama-3.1-70b-instruct replicas (TP 4)",
                                "llama-3.1-8b-instruct replicas (TP 1)"]
    assert placed("export") == ["llama-3.1-70b-instruct replicas (TP 4)", "llama-3.1-8b-instruct replicas (TP 1)"]
    assert placed("sweep")[-1] == "train workers"
