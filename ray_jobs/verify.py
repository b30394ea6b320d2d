"""Stage verify: episodes/ -> verified_episodes/, dataset/ (declared in toolweave/stages/verify.py).

    python -m ray_jobs.verify --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.verify --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import verify

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(verify.STAGE)
