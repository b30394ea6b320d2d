"""Stage solve: instructions/ -> episodes/, one ToolBench-style solution search per instruction
(DFSDT or CoT: `toolweave.search.solve_instruction`), over the splits `solve.splits` names."""
from __future__ import annotations

from typing import Any

from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Tool
from toolweave.stages.declaration import Dataset, Stage
from toolweave.stages.episodes import EpisodeWorker, episode_id


class SolveWorker(EpisodeWorker):
    stage = "solve"

    def __init__(self, cfg: RunConfig, clients):
        super().__init__(cfg, clients)
        self.method = cfg.solve.method

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        from toolweave.search import solve_instruction
        return await solve_instruction(instruction, tools, self.client("assistant"), self.executor,
                                       self.cfg.solve, env_cfg=self.cfg.executor,
                                       episode_id=episode_id(instruction.id, self.method))


def in_solved_splits(cfg: RunConfig, row: dict[str, Any]) -> bool:
    return not cfg.solve.splits or row.get("split") in cfg.solve.splits


STAGE = Stage("solve", reads=(Dataset("instructions", Instruction), Dataset("toolsets", Tool)),
              writes=(Dataset("episodes", Episode),), roles=("assistant", "executor"), worker=SolveWorker,
              shaped_by=("solve.method",), select=in_solved_splits, select_columns=("split",))
