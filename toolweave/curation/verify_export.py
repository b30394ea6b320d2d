"""The run-directory steps of the verify and export stages, Ray-free (`toolweave/stages/verify.py`
runs `toolweave.curation.verify.verify_episode` per record between these):

- `import_answers(ctx)` (verify's prepare): `verify.import_answers` (ToolBench answer files) into its
  episodes input;
- `write_card(ctx)` (verify's finish): the dataset folder (Parquet + card + plots) from every
  verified episode;
- `episodes_for_training(verified, episodes)`: each episode once, verified where it was checked (sft_data, export);
- `run_export(ctx)`: the episodes sft_data would train on (`verify.require` / `verify.toolbench_rule`)
  -> the export folder in every format (ShareGPT, OpenAI fine-tuning JSONL, ToolAlpaca, ToolBench answers).

Each takes its stage's context (`toolweave.stage_context`): the datasets come from the declaration.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave.curation.dataset_card import push_to_hub, write_dataset
from toolweave.evaluation.judge import Judge
from toolweave.curation.export import export_all
from toolweave.converters.toolbench import answer_to_episode
from toolweave.llm.types import CallTag, ChatModel
from toolweave.schemas import Episode, Instruction, RecordError, Reject, Tool, VerifiedEpisode
from toolweave.curation.verify import select_for_sft, summarize
from toolweave.stage_context import StageContext


def make_judge(cfg: RunConfig, model: ChatModel | None, stage: str) -> Judge | None:
    if not cfg.verify.semantic:
        return None
    if model is None:
        raise ValueError(f"verify.semantic needs a chat model for role {cfg.verify.judge_role!r}")
    return Judge(model, name=getattr(model, "model", ""), output=cfg.evaluate.judge_output,
                 retries=cfg.evaluate.judge_retries, tag=CallTag(stage=stage, role="judge"))


def import_answers(ctx: StageContext) -> dict[str, Any]:
    """`verify.import_answers` -> one fixed-name part of its episodes input (a rerun rewrites it: same
    records); a file that is no answer becomes a Reject in the stage's rejects (also one fixed part)."""
    cfg, episodes_in = ctx.cfg, ctx.of_kind(Episode)
    assert ctx.rejects is not None
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
            rejects.append(Reject(id=f"{ctx.name}:import:{f}", stage=ctx.name, source=str(f), reason=str(e)))
    episodes_in.writer().replace(episodes, name="imported-answers")
    ctx.rejects.replace(rejects, name="imported-answers")
    return {"imported_answers": len(episodes), "import_rejects": len(rejects)}


def write_card(ctx: StageContext, *, count_tokens: Any = None, encoder: Any = None) -> dict[str, Any]:
    """After the records: the dataset folder (Parquet + card + plots, the stage's files output) from
    every verified episode of the run, and its counts for the summary. `count_tokens` / `encoder`:
    the card's token counter and instruction encoder (defaults: an estimate and the shipped MiniLM)."""
    cfg = ctx.cfg
    verified, folder = ctx.outputs.values()
    everything, _ = verified.reader().read()
    tools, _ = ctx.of_kind(Tool).read()
    stats = write_dataset(folder.path, everything, tools, cfg.llm, cfg.dataset,  # type: ignore[arg-type]
                          count_tokens=count_tokens, encoder=encoder)
    notes: dict[str, Any] = {"verification": summarize(everything), "dataset": {
        "episodes": stats["episodes"], "verified": stats["verified"], "splits": stats["splits"]}}
    if cfg.dataset.push_to_hub:
        notes["pushed_to"] = push_to_hub(folder.path, cfg.dataset.push_to_hub,
                                         token_env=cfg.dataset.token_env, private=cfg.dataset.private)
    return notes


def episodes_for_training(ctx: StageContext) -> tuple[list[Episode], list[Episode], list[RecordError]]:
    """(verified episodes, episodes not verified yet, unreadable rows) of the run: each episode once,
    as the stage's verified input has it where it was checked, else as its episodes input has it."""
    verified, bad = ctx.of_kind(VerifiedEpisode).read()
    plain, bad_plain = ctx.of_kind(Episode).read()
    checked = {v.id for v in verified}
    return list(verified), [ep for ep in plain if ep.id not in checked], [*bad, *bad_plain]


def run_export(ctx: StageContext) -> dict[str, Any]:
    cfg, (out,) = ctx.cfg, ctx.outputs.values()
    verified, unchecked, _ = episodes_for_training(ctx)
    # episodes never verified still count: select_for_sft names why each one is left out
    kept, excluded = select_for_sft([*verified, *unchecked], cfg.verify)
    tools, _ = ctx.of_kind(Tool).read()
    instructions, _ = ctx.of_kind(Instruction).read()
    first_tool = {i.id: i.tool_ids[0] for i in instructions if i.tool_ids}  # type: ignore[attr-defined]
    tool_of = {ep.id: first_tool[ep.instruction_id] for ep in kept if ep.instruction_id in first_tool}
    counts = export_all(kept, out.path, tools=tools, tool_of=tool_of)  # type: ignore[arg-type]
    reasons = Counter(why.split(": ")[1] if ": " in why else why for _, why in excluded)  # "excluded: <what>: ..."
    return {"stage": ctx.name, "inputs": len(kept) + len(excluded), "outputs": len(kept), "excluded": len(excluded),
            "excluded_by_reason": dict(sorted(reasons.items())), "formats": counts, "output": str(out.path)}
