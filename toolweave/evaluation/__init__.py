"""Evaluation: ToolEval pass rate and win rate (ToolBench semantics), StableToolBench's solvable pass
rate, ToolAlpaca's process/response correctness, and the run report. `run(ctx, clients, datasets)`
judges (the evaluate stage's core: `toolweave.stages.evaluate.judge` hands it its context's datasets)."""
from toolweave.evaluation.stage import Datasets, judged_episodes, run

__all__ = ["Datasets", "judged_episodes", "run"]
