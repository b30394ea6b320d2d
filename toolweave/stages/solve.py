"""Stage solve: instructions/ -> episodes/, one ToolBench-style solution search per instruction
(DFSDT or CoT: `toolweave.search.solve_instruction`), over the splits `solve.splits` names."""
from __future__ import annotations

from typing import Any

from toolweave import io
from toolweave.config import RunConfig, SolveConfig
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
        if self.cfg.solve.tools == "retrieved" or io.exists(self.cfg.path("retriever", "report.json")):
            from toolweave.retrieval.hybrid import load_ranker
            try:
                self.retriever = load_ranker(self.cfg.path("retriever"), self.cfg.retriever.ranking)
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
        from toolweave.search import solve_instruction
        episode = await solve_instruction(instruction, self.tools_for(instruction), self.client("assistant"),
                                          self.executor, self.cfg.solve, env_cfg=self.cfg.executor,
                                          episode_id=setting_episode_id(instruction.id, self.method, self.cfg),
                                          stage=self.stage)
        if "retrieved" in instruction.extra:
            episode.extra["retrieved"] = instruction.extra["retrieved"]
        return [self.with_setting(episode)]

    def on_error(self, row: dict[str, Any], error: BaseException) -> list[Record]:
        return [self.with_setting(e) if isinstance(e, Episode) else e for e in super().on_error(row, error)]

    def with_setting(self, episode: Episode) -> Episode:
        """The episode says which tools it was solved with (`extra.tools`: evaluate's oracle /
        retriever rows); a retrieved one has its own id, so both settings' episodes of an
        instruction can live in one dataset (eval_episodes/)."""
        episode.extra["tools"] = self.cfg.solve.tools
        return episode.model_copy(update={"id": setting_episode_id(episode.instruction_id, self.method, self.cfg)})


def setting_episode_id(instruction_id: str, method: str, cfg: RunConfig) -> str:
    """`<instruction>--<method>` with the given tools (as always), `...--retrieved` with retrieved ones."""
    base = episode_id(instruction_id, method)
    return base if cfg.solve.tools == "given" else f"{base}--{cfg.solve.tools}"


def in_solved_splits(cfg: RunConfig, row: dict[str, Any]) -> bool:
    return not cfg.solve.splits or row.get("split") in cfg.solve.splits


STAGE = Stage("solve", reads=(Dataset("instructions", Instruction), Dataset("toolsets", Tool)),
              writes=(Dataset("episodes", Episode),), roles=("assistant", "executor"), worker=SolveWorker,
              # every solve setting shapes an episode (the method, budgets, prompts, depth counting rule,
              # tools...) but `splits`, which only selects the inputs (`select`)
              shaped_by=tuple(f"solve.{k}" for k in SolveConfig.model_fields if k != "splits"),
              select=in_solved_splits, select_columns=("split",))
