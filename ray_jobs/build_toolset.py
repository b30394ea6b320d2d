"""Stage build_toolset: catalogue/ -> toolsets/ (declared in toolweave/stages/build_toolset.py).

    python -m ray_jobs.build_toolset --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.build_toolset --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import build_toolset

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(build_toolset.STAGE)
