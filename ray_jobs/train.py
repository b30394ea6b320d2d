"""Stage train: sft/ -> train/, model/ (declared in toolweave/stages/train.py).

    python -m ray_jobs.train --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.train --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import train

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(train.STAGE)
