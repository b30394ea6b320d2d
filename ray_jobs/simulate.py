"""Stage simulate: instructions/ -> episodes/: toolweave.simulate.simulate_episode per instruction
(toolweave.stages.workers.SimulateWorker; ToolAlpaca's user / assistant / executor agents).

    python -m ray_jobs.simulate --config configs/quickstart.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.simulate --config configs/quickstart.yaml
"""
import sys

from ray_jobs.launch import main

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    sys.exit(main("simulate"))
