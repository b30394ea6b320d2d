"""`serve`: start the configured engine and print its base URL (toolweave.llm.engine / actors.serve).

    python -m ray_jobs.serve --config configs/quickstart.yaml [key=value ...]
"""
from ray_jobs.cli import stage_main

if __name__ == "__main__":  # the engine spawns processes: keep the guard
    stage_main("serve")
