"""Stage export: verified_episodes/ -> export/ (declared in toolweave/stages/export.py).

    python -m ray_jobs.export --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.export --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import export

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(export.STAGE)
