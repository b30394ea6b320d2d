"""Stage solve: instructions/ -> episodes/, one ToolBench-style solution search per instruction
(DFSDT or CoT: `toolweave.search.solve_instruction`), over the splits `solve.splits` names."""
from __future__ import annotations

from typing import Any

from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Record, Tool
from toolweave.stages.declaration import Dataset, Stage
from toolweave.stages.episodes import EpisodeWorker, episode_id


class SolveWorker(EpisodeWorker):
    stage = "solve"

    def __init__(self, cfg: RunConfig, clients):
        super().__init__(cfg, clients)
        self.method = cfg.solve.method
        self.retriever = None

    async def setup(self) -> None:
        await super().setup()
        if self.cfg.solve.tools == "retrieved" or self.cfg.path("retriever", "report.json").exists():
            from toolweave.retrieval.dense import Retriever
            try:
                self.retriever = Retriever.load(self.cfg.path("retriever"))
            except (OSError, ValueError) as e:  # solve.tools: retrieved without a trained retriever
                if self.cfg.solve.tools == "retrieved":
                    raise ValueError(f"solve.tools is 'retrieved' but no retriever in "
                                     f"{self.cfg.path('retriever')} (run the retriever stage): {e}") from e

    async def process(self, row: dict[str, Any]) -> list[Record]:
        """As EpisodeWorker's, with the retrieved tools when solve.tools is 'retrieved' or none are given."""
        instruction = Instruction.from_row(row)
        if self.retriever is not None and (self.cfg.solve.tools == "retrieved" or not instruction.tool_ids):
            from toolweave.retrieval.solve_tools import with_retrieved_tools
            instruction = with_retrieved_tools(instruction, self.retriever, self.cfg.solve.retrieved_k,
                                               set(self.tools))
        return [await self.run_episode(instruction, self.tools_for(instruction))]

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        from toolweave.search import solve_instruction
        return await solve_instruction(instruction, tools, self.client("assistant"), self.executor,
                                       self.cfg.solve, env_cfg=self.cfg.executor,
                                       episode_id=episode_id(instruction.id, self.method))


def in_solved_splits(cfg: RunConfig, row: dict[str, Any]) -> bool:
    return not cfg.solve.splits or row.get("split") in cfg.solve.splits


STAGE = Stage("solve", reads=(Dataset("instructions", Instruction), Dataset("toolsets", Tool)),
              writes=(Dataset("episodes", Episode),), roles=("assistant", "executor"), worker=SolveWorker,
              shaped_by=("solve.method", "solve.tools"), select=in_solved_splits, select_columns=("split",))
