"""Episodes → SFT dataset: render, tokenize with exact loss masks, pack, write Parquet (`sft/`).

Episodes that are not used are recorded in `sft_rejects/` with the reason (schema misfits, failed
verification checks (`verify.require`, `verify.toolbench_rule`), give-up or invalid trajectories unless
`sft.include_give_up`, render failures, examples longer than `max_len`). By default only verified
episodes are used: a chain with a verify stage reads them from `verified_episodes/`.
A rerun skips episodes already in `sft/` or `sft_rejects/`.
"""
from __future__ import annotations

import json
import logging

from toolweave.config import RunConfig, SFTConfig, VerifyConfig
from toolweave.io import iter_rows
from toolweave.schemas import Episode, RecordError, Reject, SFTExample, VerifiedEpisode
from toolweave.curation.verify import sft_exclusion, unverified_chain
from toolweave.curation.verify_export import episodes_for_training
from toolweave.stages import sft_data
from toolweave.stage_context import StageContext
from toolweave.stages.registry import chain
from training.formats import RenderError, Segment, render
from training.toolalpaca_v1 import render_toolalpaca_v1
from training.toolllama_steps import render_steps
from training.packing import Example, efficiency, pack, to_record
from training.tokenize import IGNORE, tokenize_segments
from training.tokenizers import load_tokenizer, tokenizer_for_chat

log = logging.getLogger(__name__)

ROWS_PER_PART = 2000


def sft_tokenizer(sft: SFTConfig):
    """The tokenizer SFT data is made with (and the trained model is saved with)."""
    tok = load_tokenizer(sft.tokenizer or "smollm2", sft.cache_dir)  # RunConfig sets it to the trained model's
    return tokenizer_for_chat(tok, sft.chat_template) if sft.format == "chat_template" else tok


def exclusion(ep: Episode, sft: SFTConfig) -> str | None:
    """Why an episode is not trained on (None: it is)."""
    toolbench = (ep.extra.get("toolbench") or {}).get("answer_generation") or {}
    if toolbench.get("valid_data") is True and "train_ends" in (ep.extra.get("toolbench") or {}):
        # ToolBench's own verdict (a give-up kept when the budget ran out is valid data there too)
        gave_up = toolbench.get("finish_type") == "give_up"
        return "excluded: gave up (sft.include_give_up is false)" if gave_up and not sft.include_give_up else None
    if ep.extra.get("valid_data") is False:
        return "excluded: invalid trajectory (valid_data false)"
    if ep.status == "gave_up" and not sft.include_give_up:
        return "excluded: gave up (sft.include_give_up is false)"
    if ep.status not in ("answered", "gave_up"):
        return f"excluded: invalid trajectory (status {ep.status})"
    return None


def episode_example(ep: Episode, tokenizer, sft: SFTConfig) -> Example:
    """Render and tokenize one episode (its first example); RenderError names why it cannot be used."""
    return episode_examples(ep, tokenizer, sft)[0]


def render_examples(ep: Episode, tokenizer, fmt: str, loss_on: str) -> list[list[Segment]]:
    """Every training example of an episode: one per episode, or one per step for `toolllama_steps`
    (ToolBench's preprocess: loss on each step's own reply, whatever `loss_on` says)."""
    if fmt == "toolllama_steps":
        return render_steps(ep, tokenizer.eos_token or "")
    if fmt == "toolalpaca_v1":
        return [render_toolalpaca_v1(ep)]
    return [render(ep, tokenizer, fmt, loss_on)]


def episode_examples(ep: Episode, tokenizer, sft: SFTConfig) -> list[Example]:
    """All of an episode's examples (one per step for `toolllama_steps`)."""
    return [_example(ep, tokenizer, sft, segments)
            for segments in render_examples(ep, tokenizer, sft.format, sft.loss_on)]


def _example(ep: Episode, tokenizer, sft: SFTConfig, segments) -> Example:
    ids, labels = tokenize_segments(tokenizer, segments)
    if len(ids) > sft.max_len:
        if not sft.truncate:
            raise RenderError(f"{len(ids)} tokens > sft.max_len {sft.max_len}")
        ids, labels = ids[:sft.max_len], labels[:sft.max_len]
    if all(l == IGNORE for l in labels[1:]):  # the first token is never predicted
        raise RenderError("no trained tokens" + (f" within sft.max_len {sft.max_len}" if sft.truncate else ""))
    return Example(ep.id, ids, labels)


def _reject(rid: str, reason: str, record: str = "", stage: str = sft_data.STAGE.name) -> Reject:
    return Reject(id=rid, stage=stage, source="episodes", reason=reason, record=record[:2000])


def build(episodes: list[Episode], tokenizer, sft: SFTConfig, verify: VerifyConfig | None = None,
          stage: str = sft_data.STAGE.name) -> tuple[list[SFTExample], list[Reject], dict]:
    """Episodes → packed (or one-per-row) SFT records and rejects, without IO. With `verify`, an
    episode must also pass what `verify.require` / `verify.toolbench_rule` ask (`sft_exclusion`)."""
    examples: list[Example] = []
    rejects: list[Reject] = []
    skipped_split = 0
    seen: set[str] = set()
    for ep in episodes:
        if sft.splits and ep.split not in sft.splits:
            skipped_split += 1
            continue
        reason = "duplicate episode id" if ep.id in seen else (
            (verify is not None and sft_exclusion(ep, verify)) or exclusion(ep, sft))
        seen.add(ep.id)
        if reason is None:
            try:
                examples.extend(episode_examples(ep, tokenizer, sft))
                continue
            except RenderError as e:
                reason = f"cannot render ({sft.format}): {e}"
        log.info("episode %r not used: %s", ep.id, reason)
        rejects.append(_reject(ep.id, reason, json.dumps(ep.to_row(), ensure_ascii=False), stage))
    rows = pack(examples, sft.max_len) if sft.pack else [[e] for e in examples]
    records = [to_record(r, sft.format) for r in rows]
    lengths = [len(r.input_ids) for r in records]
    stats = {
        "examples": len(examples), "rows": len(records), "rejected": len(rejects),
        "skipped_other_splits": skipped_split,
        "tokens": sum(lengths), "trained_tokens": sum(sum(l != IGNORE for l in r.labels) for r in records),
        # real tokens ÷ tokens computed with every row at max_len (packed) or at the longest row (padded)
        "packing_efficiency": efficiency(lengths, sft.max_len if sft.pack else None),
    }
    return records, rejects, stats


def verification_required(cfg: RunConfig) -> bool:
    """Whether sft_data may train only on verified episodes (the default); then the chain must
    verify them: a config without a verify stage stops with one line saying what to do."""
    problem = unverified_chain(cfg)
    if problem:
        raise ValueError(f"sft_data: {problem}")
    return bool(cfg.verify.require or cfg.verify.toolbench_rule)


def episodes_to_use(ctx: StageContext, required: bool) -> tuple[list[Episode], list[RecordError], int]:
    """(episodes, unreadable rows, episodes waiting for verify): with verification required, the
    verified ones (verified_episodes/); those verify has not checked yet are left for a later run
    (neither trained on nor rejected). Else every episode, verified where it was checked."""
    source, verified_in = ctx.source(), ctx.of_kind(VerifiedEpisode)
    if source is not None and source.dataset != verified_in.dataset:  # episodes, or a curated set (dedupe)
        good, bad = source.read()
        return good, bad, 0
    if source is None and not any(verified_in.dataset in s.writes for s in chain(ctx.cfg.stages)):
        good, bad = ctx.of_kind(Episode).read()
        return good, bad, 0
    verified, unchecked, bad = episodes_for_training(ctx)
    if required:
        return verified, bad, len(unchecked)
    return [*verified, *unchecked], bad, 0


def run(ctx: StageContext) -> dict:
    cfg, (out, rej_out) = ctx.cfg, ctx.outputs.values()
    sft = cfg.sft
    required = verification_required(cfg)
    good, bad, waiting = episodes_to_use(ctx, required)
    done = rej_out.written_ids() | {e for row in iter_rows(out.path, ["episode_ids"]) for e in row["episode_ids"]}
    todo = [ep for ep in good if ep.id not in done]
    rejects = [_reject(e.record_id, f"not an Episode record: {e.reason}", stage=ctx.name)
               for e in bad if e.record_id not in done]
    records, more_rejects, stats = build(todo, sft_tokenizer(sft), sft, cfg.verify if required else None, ctx.name)
    rejects += more_rejects
    if waiting:
        log.warning("sft_data: %d episodes are not verified yet (run the verify stage): left for a later run", waiting)
    stats.update(verified_only=required, not_verified_yet=waiting)
    for k in range(0, len(records), ROWS_PER_PART):
        out.write(records[k:k + ROWS_PER_PART])
    rej_out.write(rejects)
    stats.update(episodes=len(good) + len(bad), already_done=len(good) - len(todo), rejected=len(rejects),
                 format=sft.format, loss_on=sft.loss_on, max_len=sft.max_len, output=str(out.path))
    log.info("sft_data: %s", stats)
    return stats
