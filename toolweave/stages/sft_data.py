"""Stage sft_data: verified_episodes/ (episodes/ with `verify.require: []`) -> sft/ (`training.sft_data.run`,
bound on the Ray side by `training.drivers`: render each episode in `sft.format`, tokenize with exact
loss masks, pack); unusable episodes, and those that failed a required verification check
(`verify.require`, `verify.toolbench_rule`) -> sft_rejects/ with the reason."""
from __future__ import annotations

from toolweave.schemas import Episode, Reject, SFTExample, VerifiedEpisode
from toolweave.stages.declaration import Dataset, Stage

STAGE = Stage("sft_data", reads=(Dataset("verified_episodes", VerifiedEpisode), Dataset("episodes", Episode)),
              writes=(Dataset("sft", SFTExample), Dataset("sft_rejects", Reject)), driver_on_ray=True)
