"""Stage retriever: instructions/ -> retriever/ (declared in toolweave/stages/retriever.py).

    python -m ray_jobs.retriever --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.retriever --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import retriever

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(retriever.STAGE)
