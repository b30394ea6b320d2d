"""Objective tool-use metrics of solved episodes, per query, and a base-vs-trained comparison with
bootstrap confidence intervals over queries (benchmarks/proof_of_value.py, the report's before/after).

Per query (an episode of the model under test on a held-out instruction), over the model's replies
(its assistant messages: a reply without a parsed call counts too, so a model that writes no call,
or one the engine's parser cannot read, scores 0 rather than dropping out):
- `well_formed`: replies that call an offered function (Finish included) with arguments that parse
  as a JSON object;
- `relevant_api`: replies that call a function the query needs (its `relevant_functions`);
- `schema_valid`: replies whose call's arguments validate against the function's JSON Schema;
- `finish_answer`: the episode ended on Finish with an answer (status `answered`);
- `calls_to_first_valid`: 1-based position (in replies) of the first schema-valid call to a tool
  other than Finish (queries with one);
- `judge_pass`: the judge's pass label (with its judge's name beside it).
Rates over replies are pooled: a resample's sum of matching replies over its sum of replies.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import jsonschema

from toolweave.schemas import EvalResult, Episode, Instruction, Tool
from toolweave.toolsets.export import FINISH, openai_tools

CALL_RATES = ("well_formed", "relevant_api", "schema_valid")
METRICS = (*CALL_RATES, "finish_answer", "calls_to_first_valid", "judge_pass")


@dataclass
class QueryScore:
    query_id: str
    replies: int = 0
    calls: int = 0  # tool calls other than Finish (shown beside the rates)
    well_formed: int = 0
    relevant_api: int = 0
    schema_valid: int = 0
    finish_answer: bool = False
    calls_to_first_valid: int | None = None
    judge_pass: float | None = None


def _arguments(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def relevant_names(instruction: Instruction, tools: dict[str, Tool]) -> set[str]:
    """Exported function names (ToolBench's and plain naming) of the query's relevant functions."""
    own = [tools[t] for t in instruction.tool_ids if t in tools]
    wanted = {(r.tool, r.function) for r in instruction.relevant_functions}
    names: set[str] = set()
    for naming in ("toolbench", "plain"):
        _, mapping = openai_tools(own, naming)  # type: ignore[arg-type]
        names |= {name for name, ref in mapping.items() if ref in wanted}
    return names


def score_episode(ep: Episode, relevant: set[str]) -> QueryScore:
    schemas = {t["function"]["name"]: t["function"].get("parameters") or {}
               for t in ep.tools if isinstance(t.get("function"), dict)}
    s = QueryScore(ep.instruction_id, finish_answer=ep.status == "answered")
    for msg in ep.messages:
        if msg.get("role") != "assistant":
            continue
        s.replies += 1
        calls = msg.get("tool_calls") or []
        if not calls:
            continue
        fn = calls[0].get("function") or {}  # the one the solver ran
        name = fn.get("name")
        s.calls += name != FINISH
        args = _arguments(fn.get("arguments"))
        formed = name in schemas and args is not None
        s.well_formed += formed
        s.relevant_api += name in relevant
        valid = formed and _valid(args, schemas[name])
        s.schema_valid += valid
        if valid and name != FINISH and s.calls_to_first_valid is None:
            s.calls_to_first_valid = s.replies
    return s


def _valid(args: Any, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(args, schema)
    except jsonschema.ValidationError:
        return False
    except jsonschema.SchemaError:  # a tool's broken schema: the call cannot be shown valid
        return False
    return True


def score_queries(episodes: list[Episode], instructions: list[Instruction], tools: list[Tool],
                  judged: list[EvalResult] = ()) -> list[QueryScore]:
    """One score per query (its first episode by id: one setting, one try), with its judge label."""
    by_id = {i.id: i for i in instructions}
    tool_by_id = {t.id: t for t in tools}
    passed = {r.query_id: r.score for r in judged if r.metric == "pass_rate"}
    first: dict[str, Episode] = {}
    for ep in sorted(episodes, key=lambda e: e.id):
        first.setdefault(ep.instruction_id, ep)
    out = []
    for qid, ep in sorted(first.items()):
        ins = by_id.get(qid)
        if ins is None:
            raise ValueError(f"episode {ep.id}: its instruction {qid} is not in the run's instructions")
        s = score_episode(ep, relevant_names(ins, tool_by_id))
        s.judge_pass = passed.get(qid)
        out.append(s)
    return out


def metric_value(scores: list[QueryScore], metric: str) -> float | None:
    if metric in CALL_RATES:
        replies = sum(s.replies for s in scores)
        return sum(getattr(s, metric) for s in scores) / replies if replies else None
    values = [getattr(s, metric) for s in scores]
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def metric_n(scores: list[QueryScore], metric: str) -> int:
    """Queries the metric is computed over."""
    return len([s for s in scores if getattr(s, metric) is not None])


def compare(base: list[QueryScore], trained: list[QueryScore], *, resamples: int = 2000, seed: int = 0,
            level: float = 0.95) -> list[dict[str, Any]]:
    """One row a metric: base, trained, difference and the bootstrap CI of the difference (queries
    resampled with replacement, paired where both models solved the same queries)."""
    rng = random.Random(seed)
    b_by, t_by = {s.query_id: s for s in base}, {s.query_id: s for s in trained}
    shared = sorted(set(b_by) & set(t_by))
    rows = []
    for metric in METRICS:
        b, t = metric_value(base, metric), metric_value(trained, metric)
        diffs = []
        for _ in range(resamples if shared else 0):
            pick = [rng.choice(shared) for _ in shared]
            bv, tv = metric_value([b_by[q] for q in pick], metric), metric_value([t_by[q] for q in pick], metric)
            if bv is not None and tv is not None:
                diffs.append(tv - bv)
        diffs.sort()
        lo = diffs[int((1 - level) / 2 * len(diffs))] if diffs else None
        hi = diffs[min(len(diffs) - 1, int((1 + level) / 2 * len(diffs)))] if diffs else None
        rows.append({"metric": metric, "base": b, "trained": t,
                     "difference": None if b is None or t is None else t - b, "ci_low": lo, "ci_high": hi,
                     "n_base": metric_n(base, metric), "n_trained": metric_n(trained, metric),
                     "replies_base": sum(s.replies for s in base), "replies_trained": sum(s.replies for s in trained),
                     "calls_base": sum(s.calls for s in base), "calls_trained": sum(s.calls for s in trained)})
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def table_text(rows: list[dict[str, Any]], judge: str = "") -> str:
    """The comparison as a Markdown table (the benchmark prints it; the report shows it)."""
    lines = ["| metric | base | trained | difference | 95% CI | queries (base / trained) |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        name = f"judge_pass ({judge}-judged)" if r["metric"] == "judge_pass" and judge else r["metric"]
        ci = "-" if r["ci_low"] is None else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        n = f"{r['n_base']} / {r['n_trained']}"
        if r["metric"] in CALL_RATES:
            n += f" ({r['replies_base']} / {r['replies_trained']} replies)"
        lines.append(f"| {name} | {_fmt(r['base'])} | {_fmt(r['trained'])} | {_fmt(r['difference'])} | {ci} | {n} |")
    return "\n".join(lines)
