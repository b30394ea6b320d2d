"""The verify and export steps over a run directory, Ray-free (a stage wraps them):

- `run_verify(cfg, judge_model)`: `verify.import_answers` (ToolBench answer files) into `episodes/`,
  then `episodes/` -> `verified_episodes/` (every episode with its
  verification columns; a rerun verifies only new ids), unreadable rows -> `verify_rejects/`, then
  the dataset folder `dataset/` (Parquet + card + plots) from every verified episode of the run.
- `run_export(cfg)`: the episodes sft_data would train on (`verify.require` / `verify.toolbench_rule`)
  -> `export/` in every format (ShareGPT, OpenAI fine-tuning JSONL, ToolAlpaca, ToolBench answers).
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave.dataset_card import push_to_hub, write_dataset
from toolweave.evaluation.judge import Judge
from toolweave.export import export_all
from toolweave.converters.toolbench import answer_to_episode
from toolweave.io import existing_ids, read_records, replace_part, write_part
from toolweave.llm.types import CallTag, ChatModel
from toolweave.schemas import Episode, Instruction, RecordError, Reject, Tool
from toolweave.verify import VerifiedEpisode, select_for_sft, summarize, verify_episodes

VERIFY = "verify"


class StageTagged:
    """A chat model whose calls are accounted to `stage` (the ToolEval judge tags its calls 'evaluate')."""

    def __init__(self, model: ChatModel, stage: str):
        self.model, self.stage = model, stage
        self.name = getattr(model, "model", "") or type(model).__name__

    async def chat(self, messages: Any, *, tag: CallTag | None = None, **kw: Any) -> Any:
        return await self.model.chat(messages, tag=replace(tag or CallTag(), stage=self.stage), **kw)


def make_judge(cfg: RunConfig, model: ChatModel | None) -> Judge | None:
    if not cfg.verify.semantic:
        return None
    if model is None:
        raise ValueError(f"verify.semantic needs a chat model for role {cfg.verify.judge_role!r}")
    return Judge(StageTagged(model, VERIFY), name=getattr(model, "model", ""), output=cfg.evaluate.judge_output,
                 retries=cfg.evaluate.judge_retries)


def import_answers(cfg: RunConfig) -> tuple[int, list[Reject]]:
    """`verify.import_answers` -> one fixed-name part of `episodes/` (a rerun rewrites it: same records)."""
    files: list[Path] = []
    for name in cfg.verify.import_answers:
        p = Path(name).expanduser()
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    episodes, rejects = [], []
    for f in files:
        try:
            episodes.append(answer_to_episode(f))
        except RecordError as e:
            rejects.append(Reject(id=f"{VERIFY}:import:{f}", stage=VERIFY, source=str(f), reason=str(e)))
    replace_part(episodes, cfg.path("episodes"), Episode, name="imported-answers")
    return len(episodes), rejects


def run_verify(cfg: RunConfig, judge_model: ChatModel | None = None, *, concurrency: int | None = None,
               count_tokens: Any = None, encoder: Any = None) -> dict[str, Any]:
    """`count_tokens` / `encoder`: the card's token counter and instruction encoder (defaults: an
    estimate and the shipped MiniLM)."""
    out = cfg.path("verified_episodes")
    imported, import_rejects = import_answers(cfg) if cfg.verify.import_answers else (0, [])
    episodes, bad = read_records(cfg.path("episodes"), Episode)
    done = existing_ids(out)
    todo = [ep for ep in episodes if ep.id not in done]
    judge = make_judge(cfg, judge_model) if todo else None
    fresh = asyncio.run(verify_episodes(todo, cfg.verify, judge, concurrency=concurrency or cfg.evaluate.concurrency))
    write_part(fresh, out, VerifiedEpisode)
    seen = existing_ids(cfg.path("verify_rejects"))
    rejects = [Reject(id=f"{VERIFY}:unreadable:{e.record_id}", stage=VERIFY, source="episodes",
                      reason=f"not an Episode record: {e.reason}") for e in bad] + import_rejects
    write_part([r for r in rejects if r.id not in seen], cfg.path("verify_rejects"), Reject)
    everything, _ = read_records(out, VerifiedEpisode)
    tools, _ = read_records(cfg.path("toolsets"), Tool)
    stats = write_dataset(cfg.path("dataset"), everything, tools, cfg.llm, cfg.dataset,  # type: ignore[arg-type]
                          count_tokens=count_tokens, encoder=encoder)
    summary = {"stage": VERIFY, "inputs": len(episodes) + len(bad), "skipped_already_done": len(episodes) - len(todo),
               "processed": len(fresh), "outputs": len(fresh), "rejected": len(rejects), "imported_answers": imported,
               "verification": summarize(fresh), "dataset": {"episodes": stats["episodes"],
                                                            "verified": stats["verified"], "splits": stats["splits"]}}
    if cfg.dataset.push_to_hub:
        summary["pushed_to"] = push_to_hub(cfg.path("dataset"), cfg.dataset.push_to_hub,
                                           token_env=cfg.dataset.token_env, private=cfg.dataset.private)
    return summary


def run_export(cfg: RunConfig) -> dict[str, Any]:
    verified, _ = read_records(cfg.path("verified_episodes"), VerifiedEpisode)
    plain, _ = read_records(cfg.path("episodes"), Episode)
    checked = {v.id for v in verified}
    # episodes never verified still count: select_for_sft names why each one is left out
    kept, excluded = select_for_sft([*verified, *(ep for ep in plain if ep.id not in checked)], cfg.verify)
    tools, _ = read_records(cfg.path("toolsets"), Tool)
    instructions, _ = read_records(cfg.path("instructions"), Instruction)
    first_tool = {i.id: i.tool_ids[0] for i in instructions if i.tool_ids}  # type: ignore[attr-defined]
    tool_of = {ep.id: first_tool[ep.instruction_id] for ep in kept if ep.instruction_id in first_tool}
    counts = export_all(kept, cfg.path("export"), tools=tools, tool_of=tool_of)  # type: ignore[arg-type]
    reasons = Counter(why.split(": ")[1] if ": " in why else why for _, why in excluded)  # "excluded: <what>: ..."
    return {"stage": "export", "inputs": len(kept) + len(excluded), "outputs": len(kept), "excluded": len(excluded),
            "excluded_by_reason": dict(sorted(reasons.items())), "formats": counts, "output": str(cfg.path("export"))}
