"""Evaluation: ToolEval pass rate and win rate (ToolBench semantics), StableToolBench's solvable pass
rate, ToolAlpaca's process/response correctness, and the run report. `run(cfg, clients)` is the stage."""
from toolweave.evaluation.stage import run

__all__ = ["run"]
