"""Stage simulate: instructions/ -> episodes/, one ToolAlpaca-style simulated episode per instruction
(user, assistant and executor agents: `toolweave.solving.simulate.simulate_episode`)."""
from __future__ import annotations

from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Tool
from toolweave.stages.declaration import Dataset, Stage
from toolweave.stages.episodes import EpisodeWorker, episode_id


class SimulateWorker(EpisodeWorker):
    stage = "simulate"

    def __init__(self, cfg: RunConfig, clients):
        super().__init__(cfg, clients)
        self.method = "simulate_react" if cfg.simulate.protocol == "react" else "simulate_fc"

    async def run_episode(self, instruction: Instruction, tools: list[Tool]) -> Episode:
        from toolweave.solving.simulate import simulate_episode
        return await simulate_episode(instruction, tools, assistant=self.client("assistant"),
                                      user=self.client("user"), executor=self.executor,
                                      cfg=self.cfg.simulate, env_cfg=self.cfg.executor,
                                      episode_id=episode_id(instruction.id, self.method), stage=self.stage)


STAGE = Stage("simulate", reads=(Dataset("instructions", Instruction), Dataset("toolsets", Tool)),
              writes=(Dataset("episodes", Episode),), roles=("assistant", "user", "executor"),
              worker=SimulateWorker, shaped_by=("simulate.protocol", "simulate.naming"))
