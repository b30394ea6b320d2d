"""Stage evaluate: eval_episodes/ -> eval/, report/ (declared in toolweave/stages/evaluate.py).

    python -m ray_jobs.evaluate --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.evaluate --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import evaluate

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(evaluate.STAGE)
