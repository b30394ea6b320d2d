"""Stage solve: instructions/ -> episodes/ (declared in toolweave/stages/solve.py).

    python -m ray_jobs.solve --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.solve --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import solve

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(solve.STAGE)
