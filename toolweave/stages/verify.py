"""Stage verify: episodes/ -> verified_episodes/, APIGen's three checks per episode
(`toolweave.curation.verify.verify_episode`: format, execution, and the semantic ToolEval judge on the
`verify.judge_role` endpoint), each recorded in the episode's declared columns; then the dataset
folder `dataset/` (card, statistics, plots) from every verified episode.

A per-record stage: the judge's calls are the cost and each episode is judged on its own, so the
episodes stream through workers (Ray actors on a cluster) like solve's instructions, with resume
and exactly-once commits. `verify.import_answers` are imported into episodes/ first (prepare).
`run.limit` does not apply: verify checks every episode the (limited) stages before it made, or
sft_data would have unverified episodes it must leave out.
"""
from __future__ import annotations

from typing import Any

from toolweave.schemas import Episode, Record, Tool, VerifiedEpisode
from toolweave.stages.base import RecordWorker
from toolweave.stage_context import StageContext
from toolweave.stages.declaration import Dataset, Stage, Summary


class VerifyWorker(RecordWorker):
    stage = "verify"

    async def setup(self) -> None:
        from toolweave.curation.verify_export import make_judge
        role = self.cfg.verify.judge_role
        self.judge = make_judge(self.cfg, self.clients.get(role) or self.clients.get("default"), self.stage)

    async def process(self, row: dict[str, Any]) -> list[Record]:
        from toolweave.curation.verify import verify_episode
        episode = Episode.from_row(row)  # a row that is no Episode: a Reject naming it (on_error)
        return [await verify_episode(episode, self.cfg.verify, self.judge)]


def import_answers(ctx: StageContext) -> Summary:
    from toolweave.curation.verify_export import import_answers as import_into_episodes
    return import_into_episodes(ctx)


def write_card(ctx: StageContext) -> Summary:
    from toolweave.curation.verify_export import write_card as write_dataset_folder  # plots: matplotlib loads here
    return write_dataset_folder(ctx)


STAGE = Stage("verify", reads=(Dataset("episodes", Episode), Dataset("toolsets", Tool)),
              writes=(Dataset("verified_episodes", VerifiedEpisode), Dataset("dataset")),
              roles=("judge",), worker=VerifyWorker, prepare=import_answers, finish=write_card,
              shaped_by=tuple(f"verify.{k}" for k in ("format", "execution", "semantic", "votes", "min_solved_votes",
                                                        "require_call", "clarify_methods")),
              limited=False, fed_by=("verify.import_answers",))
