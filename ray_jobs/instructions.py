"""Stage instructions: toolsets/ -> instructions/ (declared in toolweave/stages/instructions.py).

    python -m ray_jobs.instructions --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.instructions --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import instructions

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(instructions.STAGE)
