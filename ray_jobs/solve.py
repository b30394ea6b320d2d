"""Stage solve: instructions/ -> episodes/: toolweave.search.solve_instruction per instruction (DFSDT or CoT;
toolweave.stages.workers.SolveWorker).

    python -m ray_jobs.solve --config configs/quickstart.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.solve --config configs/quickstart.yaml
"""
import sys

from ray_jobs.launch import main

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    sys.exit(main("solve"))
