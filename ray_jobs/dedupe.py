"""Stage dedupe: episodes/ -> deduped_episodes/ (declared in toolweave/stages/dedupe.py).

    python -m ray_jobs.dedupe --config configs/quickstart.yaml [key=value ...] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.dedupe --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import dedupe

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(dedupe.STAGE)
