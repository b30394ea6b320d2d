"""Stage retriever: instructions/ -> retriever/: training.retriever.run.

    python -m ray_jobs.retriever --config configs/quickstart.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.retriever --config configs/quickstart.yaml
"""
import sys

from ray_jobs.launch import main

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    sys.exit(main("retriever"))
