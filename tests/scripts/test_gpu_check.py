"""scripts/gpu_check.sh without a GPU: the skip line and exit 0; `--dry-run` loads its config and
names the three steps. (The GPU path itself runs only on a machine with CUDA.)"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT), **env})


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_without_a_gpu_it_skips_cleanly(tmp_path):
    out = _run(CUDA_VISIBLE_DEVICES="", GPU_CHECK_RUN_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("skipped: no GPU")
    assert not list(tmp_path.iterdir())  # nothing ran


def test_dry_run_loads_the_config_and_names_the_steps(tmp_path):
    out = _run("--dry-run", GPU_CHECK_RUN_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "config ok: gpu_check ['build_toolset', 'instructions', 'solve']" in out.stdout
    assert "ray_jobs.cli run configs/gpu_check.yaml" in out.stdout and "tests/training/test_gpu.py" in out.stdout
    assert f"benchmarks/proof_of_value.py --profile gpu run_dir={tmp_path}/proof_of_value" in out.stdout
