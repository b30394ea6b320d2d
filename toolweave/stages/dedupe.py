"""Stage dedupe: verified_episodes/ -> deduped_episodes/ (`toolweave.curation.dedupe.dedupe_by_tool_calls`):
episodes whose tool-call sequences are identical or nearly so are collapsed to the first; the
others go to dedupe_rejects/ naming the episode they repeat. sft_data, after it in a chain, trains
on its output (`registry.upstream`). A rerun rewrites both datasets from the whole input."""
from __future__ import annotations

from toolweave.curation.dedupe import dedupe_by_tool_calls
from toolweave.schemas import Reject, VerifiedEpisode
from toolweave.stage_context import StageContext
from toolweave.stages.declaration import Dataset, Runtime, Stage, Summary


def collapse_repeats(ctx: StageContext, runtime: Runtime) -> Summary:
    (source,), (out, rejects_out) = ctx.inputs.values(), ctx.outputs.values()
    episodes, unreadable = source.read()
    kept, rejects = dedupe_by_tool_calls(episodes, ctx.name)
    rejects += [Reject(id=f"{ctx.name}:{e.record_id}", stage=ctx.name, source=source.dataset.name,
                       reason=f"not a {source.dataset.kind.__name__} record: {e.reason}") for e in unreadable]
    out.replace(kept, name="all")
    rejects_out.replace(rejects, name="all")
    return {"stage": ctx.name, "inputs": len(episodes) + len(unreadable), "outputs": len(kept),
            "collapsed": len(rejects) - len(unreadable), "unreadable": len(unreadable)}


STAGE = Stage("dedupe", reads=(Dataset("verified_episodes", VerifiedEpisode),),
              writes=(Dataset("deduped_episodes", VerifiedEpisode), Dataset("dedupe_rejects", Reject)),
              driver=collapse_repeats)
