"""Stage instructions: toolsets/ -> instructions/: toolweave.instructions.toolalpaca_instructions per tool or
toolbench_instructions per API sample (toolweave.stages.workers), then dedupe and splits.

    python -m ray_jobs.instructions --config configs/quickstart.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.instructions --config configs/quickstart.yaml
"""
import sys

from ray_jobs.launch import main

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    sys.exit(main("instructions"))
