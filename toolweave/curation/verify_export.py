"""The run-directory steps of the verify and export stages, Ray-free (`toolweave/stages/verify.py`
runs `toolweave.curation.verify.verify_episode` per record between these):

- `import_answers(cfg)` (verify's prepare): `verify.import_answers` (ToolBench answer files) into `episodes/`;
- `write_card(cfg)` (verify's finish): the dataset folder `dataset/` (Parquet + card + plots) from
  every episode in `verified_episodes/`;
- `episodes_for_training(cfg)`: each episode once, verified where it was checked (sft_data, export);
- `run_export(cfg)`: the episodes sft_data would train on (`verify.require` / `verify.toolbench_rule`)
  -> `export/` in every format (ShareGPT, OpenAI fine-tuning JSONL, ToolAlpaca, ToolBench answers).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave.curation.dataset_card import push_to_hub, write_dataset
from toolweave.evaluation.judge import Judge
from toolweave.curation.export import export_all
from toolweave.converters.toolbench import answer_to_episode
from toolweave.io import read_records, replace_part
from toolweave.llm.types import CallTag, ChatModel
from toolweave.schemas import Episode, Instruction, RecordError, Reject, Tool, VerifiedEpisode
from toolweave.curation.verify import select_for_sft, summarize

VERIFY = "verify"
VERIFIED = "verified_episodes"  # the verify stage's records
REJECTS = "verified_episodes_rejects"  # ... and its Rejects (a per-record stage's `<output>_rejects`)


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


def import_answers(cfg: RunConfig) -> dict[str, Any]:
    """`verify.import_answers` -> one fixed-name part of `episodes/` (a rerun rewrites it: same records);
    a file that is no answer becomes a Reject in `verified_episodes_rejects/` (also one fixed part)."""
    if not cfg.verify.import_answers:
        return {}
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
    replace_part(rejects, cfg.path(REJECTS), Reject, name="imported-answers")
    return {"imported_answers": len(episodes), "import_rejects": len(rejects)}


def write_card(cfg: RunConfig, *, count_tokens: Any = None, encoder: Any = None) -> dict[str, Any]:
    """After the records: the dataset folder `dataset/` (Parquet + card + plots) from every verified
    episode of the run, and its counts for the summary. `count_tokens` / `encoder`: the card's token
    counter and instruction encoder (defaults: an estimate and the shipped MiniLM)."""
    everything, _ = read_records(cfg.path(VERIFIED), VerifiedEpisode)
    tools, _ = read_records(cfg.path("toolsets"), Tool)
    stats = write_dataset(cfg.path("dataset"), everything, tools, cfg.llm, cfg.dataset,  # type: ignore[arg-type]
                          count_tokens=count_tokens, encoder=encoder)
    notes: dict[str, Any] = {"verification": summarize(everything), "dataset": {
        "episodes": stats["episodes"], "verified": stats["verified"], "splits": stats["splits"]}}
    if cfg.dataset.push_to_hub:
        notes["pushed_to"] = push_to_hub(cfg.path("dataset"), cfg.dataset.push_to_hub,
                                         token_env=cfg.dataset.token_env, private=cfg.dataset.private)
    return notes


def episodes_for_training(cfg: RunConfig) -> tuple[list[Episode], list[Episode], list[RecordError]]:
    """(verified episodes, episodes not verified yet, unreadable rows) of the run: each episode once,
    as `verified_episodes/` has it where it was checked, else as `episodes/` has it."""
    verified, bad = read_records(cfg.path(VERIFIED), VerifiedEpisode)
    plain, bad_plain = read_records(cfg.path("episodes"), Episode)
    checked = {v.id for v in verified}
    return list(verified), [ep for ep in plain if ep.id not in checked], [*bad, *bad_plain]


def run_export(cfg: RunConfig) -> dict[str, Any]:
    verified, unchecked, _ = episodes_for_training(cfg)
    # episodes never verified still count: select_for_sft names why each one is left out
    kept, excluded = select_for_sft([*verified, *unchecked], cfg.verify)
    tools, _ = read_records(cfg.path("toolsets"), Tool)
    instructions, _ = read_records(cfg.path("instructions"), Instruction)
    first_tool = {i.id: i.tool_ids[0] for i in instructions if i.tool_ids}  # type: ignore[attr-defined]
    tool_of = {ep.id: first_tool[ep.instruction_id] for ep in kept if ep.instruction_id in first_tool}
    counts = export_all(kept, cfg.path("export"), tools=tools, tool_of=tool_of)  # type: ignore[arg-type]
    reasons = Counter(why.split(": ")[1] if ": " in why else why for _, why in excluded)  # "excluded: <what>: ..."
    return {"stage": "export", "inputs": len(kept) + len(excluded), "outputs": len(kept), "excluded": len(excluded),
            "excluded_by_reason": dict(sorted(reasons.items())), "formats": counts, "output": str(cfg.path("export"))}
