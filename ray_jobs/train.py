"""Stage train: sft/ -> train/, model/: training.trainer.run (Ray Train + DeepSpeed).

    python -m ray_jobs.train --config configs/quickstart.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.train --config configs/quickstart.yaml
"""
import sys

from ray_jobs.launch import main

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    sys.exit(main("train"))
