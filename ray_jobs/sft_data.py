"""Stage sft_data: episodes/ -> sft/ (declared in toolweave/stages/sft_data.py).

    python -m ray_jobs.sft_data --config configs/quickstart.yaml [key=value ...] [--retry-failed] [--verbose]
    ray job submit --working-dir . -- python -m ray_jobs.sft_data --config configs/quickstart.yaml
"""
from ray_jobs.cli import stage_main
from toolweave.stages import sft_data

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    stage_main(sft_data.STAGE)
