"""Stage dedupe: verified_episodes/ -> deduped_episodes/ (`toolweave.curation.dedupe.dedupe_by_tool_calls`):
episodes whose tool-call sequences are identical or nearly so are collapsed to the first; the
others go to dedupe_rejects/ naming the episode they repeat. sft_data, after it in a chain, trains
on its output (`registry.upstream`). A rerun rewrites both datasets from the whole input."""
from __future__ import annotations

from toolweave import io
from toolweave.config import RunConfig
from toolweave.curation.dedupe import dedupe_by_tool_calls
from toolweave.schemas import Reject, VerifiedEpisode
from toolweave.stages.declaration import Dataset, Runtime, Stage, Summary


def collapse_repeats(cfg: RunConfig, runtime: Runtime) -> Summary:
    source, (out, rejects_out) = STAGE.reads[0], STAGE.writes
    episodes, unreadable = io.read_records(cfg.path(source.name), source.kind)
    kept, rejects = dedupe_by_tool_calls(episodes, STAGE.name)
    rejects += [Reject(id=f"{STAGE.name}:{e.record_id}", stage=STAGE.name, source=source.name,
                       reason=f"not a {source.kind.__name__} record: {e.reason}") for e in unreadable]
    io.replace_part(kept, cfg.path(out.name), out.kind, name="all")
    io.replace_part(rejects, cfg.path(rejects_out.name), Reject, name="all")
    return {"stage": STAGE.name, "inputs": len(episodes) + len(unreadable), "outputs": len(kept),
            "collapsed": len(rejects) - len(unreadable), "unreadable": len(unreadable)}


STAGE = Stage("dedupe", reads=(Dataset("verified_episodes", VerifiedEpisode),),
              writes=(Dataset("deduped_episodes", VerifiedEpisode), Dataset("dedupe_rejects", Reject)),
              driver=collapse_repeats)
