"""Stage sweep: sft/ -> sweep/ (declared in toolweave/stages/sweep.py).

    python -m ray_jobs.sweep --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.sweep --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import sweep

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(sweep.STAGE)
