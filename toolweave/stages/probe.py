"""A probe stage: `k` chat calls per instruction, no agents. It measures the orchestration alone
(benchmarks/orchestration.py, memory.py) and drives the kill-and-resume test against a scripted
server, through the same pipeline, clients and commits as the real episode stages."""
from __future__ import annotations

from typing import Any, ClassVar

from toolweave.llm.types import CallTag
from toolweave.schemas import Episode, Instruction, Record
from toolweave.stages.declaration import Dataset, Stage
from toolweave.stages.episodes import EpisodeWorker, episode_id

CALLS_PER_EPISODE = "probe_calls"  # Instruction.extra key; default 1


class ProbeWorker(EpisodeWorker):
    stage = "probe"
    method = "probe"
    uses_tool_cache: ClassVar[bool] = False

    async def setup(self) -> None:
        pass  # no tools, no executor

    async def process(self, row: dict[str, Any]) -> list[Record]:
        ins = Instruction.from_row(row)
        k = int(ins.extra.get(CALLS_PER_EPISODE, 1))
        messages: list[dict[str, Any]] = [{"role": "user", "content": ins.text}]
        llm = self.client("assistant")
        pt = ct = 0
        for step in range(k):
            reply = await llm.chat(messages, tag=CallTag(stage=self.stage, episode=ins.id, role="assistant"))
            pt, ct = pt + reply.usage.prompt_tokens, ct + reply.usage.completion_tokens
            messages.append(reply.message)
            if step + 1 < k:
                messages.append({"role": "user", "content": "continue"})
        return [Episode(id=episode_id(ins.id, self.method), instruction_id=ins.id, method=self.method,
                        query=ins.text, status="answered", final_answer=messages[-1].get("content") or "",
                        messages=messages, model=getattr(llm, "model", ""), split=ins.split,
                        llm_calls=k, prompt_tokens=pt, completion_tokens=ct)]


# not in the registry: benchmarks and tests run it by this declaration
STAGE = Stage("probe", reads=(Dataset("instructions", Instruction),), writes=(Dataset("episodes", Episode),),
              roles=("assistant",), worker=ProbeWorker)
