"""The evaluate stage's judging core: episodes -> EvalResult records and the report.

Its datasets (`Datasets`) come from the stage's context (`toolweave.stages.evaluate.judge`): the
episodes judged (`judged_episodes`: `evaluate.episodes`, else the model under test's when they hold
data, else the run's), the instructions (query text, split, mode, golden answers), the toolsets
(ToolAlpaca's golden answers), and where the records, rejects and report go; its rejects, record
parts and judge calls carry the stage's name and call tag. Each episode method is
one candidate run, and each tool setting of it (`Answer.candidate`: `dfsdt` with the given tools,
ToolBench's "oracle"; `dfsdt_retriever` with retrieved ones); records name the setting in
`details.tools`. Rerunning skips queries already scored (their records are reused for the report).

Judgments are committed as each query finishes (`Scoring.commit`: one Parquet part per query, named
by its records' ids, written atomically), so a killed run loses only the queries in progress and a
rerun judges only what is missing. A committed part that cannot be read is moved aside, named in the
log and the summary (`redone_parts`), and its queries are judged again.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave.evaluation import toolalpaca as alpaca
from toolweave.evaluation.answers import Answer, from_episode
from toolweave.evaluation.judge import Judge, judge_options
from toolweave.evaluation.labels import AnswerStatus, TaskStatus
from toolweave.evaluation.pass_rate import QueryPass, Round, evaluate_pass_rate, summarize
from toolweave.evaluation.report import split_label, write_report
from toolweave.evaluation.toolbench_format import write_pass_rate_results
from toolweave.evaluation.win_rate import QueryWin, evaluate_win_rate
from toolweave.evaluation.win_rate import summarize as summarize_wins
from toolweave.io import delete, iter_rows, part_files, read_records
from toolweave.llm.types import ChatModel
from toolweave.schemas import Episode, EvalResult, Instruction, RecordError, Reject
from toolweave.stage_context import Dataset, DatasetReader, DatasetWriter, StageContext

log = logging.getLogger("toolweave.evaluation")


@dataclass(frozen=True)
class Datasets:
    """Where the judging reads and writes: evaluate's declared datasets, from its context."""

    episodes: DatasetReader  # the episodes judged (`judged_episodes`)
    instructions: DatasetReader
    toolsets: DatasetReader  # read for ToolAlpaca's golden answers only
    model: Path  # the trained model, named in the report when it is the one under test
    results: DatasetWriter  # EvalResult parts, one per judged query
    rejects: DatasetWriter
    report: DatasetWriter


def _rid(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:20]


def _reject(reason: str, record_id: str, source: str, stage: str) -> Reject:
    return Reject(id=_rid(stage, source, record_id, reason), stage=stage, source=source, reason=reason,
                  record=record_id)


def _dataset(cfg: RunConfig, name: str) -> Path:
    """A dataset named in the config: absolute, or relative to the run directory."""
    p = Path(name).expanduser()
    return p if p.is_absolute() else cfg.path(name)


def judged_episodes(cfg: RunConfig, solved: DatasetReader, made: DatasetReader) -> DatasetReader:
    """`evaluate.episodes` when set, else `solved` (the model under test's) when it holds data, else
    `made` (the run's own episodes)."""
    if cfg.evaluate.episodes:
        return DatasetReader(Dataset(cfg.evaluate.episodes, Episode), _dataset(cfg, cfg.evaluate.episodes))
    return solved if solved.exists() else made


def build_answers(episodes: list[Episode], instructions: dict[str, Instruction], source: str, stage: str
                  ) -> tuple[dict[str, list[Answer]], list[Reject]]:
    """Answers grouped by candidate (method and tool setting); one per (candidate, instruction) -- a
    second one is rejected, not scored."""
    by_method: dict[str, list[Answer]] = {}
    seen: dict[tuple[str, str], str] = {}
    rejects = []
    for ep in episodes:
        ins = instructions.get(ep.instruction_id)
        query = ins.text if ins else ep.query
        if not query.strip():
            rejects.append(_reject(f"episode {ep.id!r}: no query text and no instruction {ep.instruction_id!r}",
                                   ep.id, source, stage))
            continue
        split = split_label(ins.mode, ins.split) if ins else split_label("", ep.split)
        answer = from_episode(ep, query=query, split=split)
        key = (answer.candidate, ep.instruction_id)
        if key in seen:
            rejects.append(_reject(f"episode {ep.id!r}: a second {answer.candidate} episode for instruction "
                                   f"{ep.instruction_id!r}; scored {seen[key]!r} only", ep.id, source, stage))
            continue
        seen[key] = ep.id
        by_method.setdefault(answer.candidate, []).append(answer)
    return by_method, rejects


def _pass_records(results: list[QueryPass], run: str, judge: Judge, solvable: bool = True) -> list[EvalResult]:
    out = []
    for q in results:
        a = q.answer
        common = dict(query_id=a.query_id, run=run, method=a.method, split=a.split, judge_model=judge.name,
                      prompt_version=judge.prompt_version)
        details = {"episode_id": a.episode_id, "finished": a.finished, "llm_calls": a.llm_calls,
                   "tokens": a.prompt_tokens + a.completion_tokens, "solvable_score": q.solvable_score,
                   "tools": a.tools}
        votes = [r.to_json() for r in q.rounds]
        out.append(EvalResult(id=_rid("pass_rate", run, a.candidate, a.query_id), metric="pass_rate", label=q.label,
                              score=float(q.label == "Pass"), votes=votes, details=details, **common))
        if not solvable:
            continue
        status = Counter(r.answer_status.value for r in q.rounds).most_common(1)[0][0]
        out.append(EvalResult(id=_rid("solvable_pass_rate", run, a.candidate, a.query_id), metric="solvable_pass_rate",
                              label=status, score=q.solvable_score, votes=votes, details=details, **common))
    return out


def _from_record(r: EvalResult, answer: Answer) -> QueryPass:
    rounds = [Round(AnswerStatus(v["answer_status"]), TaskStatus(v["task_status"]), v["label"], v["resolved"],
                    v.get("reason", ""), v.get("judge_calls", 0), v.get("judge_failures", 0)) for v in r.votes]
    return QueryPass(answer, rounds, r.label)


async def _pass_rate(answers: list[Answer], run: str, s: "Scoring") -> list[QueryPass]:
    """Judge the answers not scored before (each query committed as it finishes); rebuild the
    others from their records."""
    ev, judge = s.cfg.evaluate, s.judge
    old, todo = [], []
    for a in answers:
        rec = s.done.get(_rid("pass_rate", run, a.candidate, a.query_id))
        (old if rec is not None else todo).append(_from_record(rec, a) if rec is not None else a)
    new = await evaluate_pass_rate(todo, judge, votes=ev.votes, seed=ev.seed, concurrency=ev.concurrency,
                                   on_query=lambda q: s.commit(_pass_records([q], run, judge, ev.solvable_pass_rate)))
    return old + new


@dataclass
class Scoring:
    """One evaluate run's state: the inputs, the records scored before (`done`), and what this run
    adds (`new` records, `rejects`, the `summary`)."""

    cfg: RunConfig
    stage: str  # its name: the rejects' stage, the record parts' prefix
    data: Datasets
    judge: Judge
    episodes: list[Episode]
    instructions: dict[str, Instruction]
    by_method: dict[str, list[Answer]]
    done: dict[str, EvalResult]
    rejects: list[Reject]
    new: list[EvalResult] = field(default_factory=list)  # committed by this run
    summary: dict[str, Any] = field(default_factory=dict)

    def commit(self, records: list[EvalResult]) -> None:
        """One finished query's records, as one part named by their ids: a rerun that judges the
        query again (killed before this landed) writes the same name, never a second copy."""
        fresh = [r for r in records if r.id not in self.done]
        if not fresh:
            return
        key = hashlib.sha256("\n".join(sorted(r.id for r in fresh)).encode()).hexdigest()[:24]
        self.data.results.replace(fresh, name=f"{self.stage}-{key}")
        self.new += fresh

    def reject(self, reason: str, record_id: str, source: str) -> Reject:
        return _reject(reason, record_id, source, self.stage)


def committed_results(results: DatasetWriter, stage: str) -> tuple[dict[str, EvalResult], list[str]]:
    """The records of earlier runs, by id, and a line per committed part that cannot be read (moved
    aside as `<part>.corrupt-<time>`, so its queries are judged again rather than skipped)."""
    done: dict[str, EvalResult] = {}
    redone: list[str] = []
    for part in part_files(results.path):
        try:
            rows = list(iter_rows(part))
        except (OSError, ValueError) as e:  # pyarrow's errors are ValueErrors / OSErrors
            aside = f"{part}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            if isinstance(part, Path):
                os.replace(part, aside)
            else:
                delete(part)
            redone.append(f"{results.dataset.name} part {part} cannot be read ({type(e).__name__}: {e}); "
                          f"moved to {aside}, its queries are judged again")
            log.warning("%s: %s", stage, redone[-1])
            continue
        for row in rows:
            try:
                r = EvalResult.from_row(row)
            except RecordError:
                continue  # a row of another shape: its query is judged again
            done[r.id] = r
    return done, redone


def _read_inputs(ctx: StageContext, data: Datasets, judge: Judge) -> Scoring:
    src = str(data.episodes.path)
    episodes, bad_eps = data.episodes.read()
    instructions, bad_ins = data.instructions.read()
    rejects = [_reject(str(e), e.record_id, e.kind, ctx.name) for e in [*bad_eps, *bad_ins]]
    ins = {i.id: i for i in instructions}
    by_method, rej = build_answers(episodes, ins, src, ctx.name)  # type: ignore[arg-type]
    done, redone = committed_results(data.results, ctx.name)
    return Scoring(ctx.cfg, ctx.name, data, judge, episodes, ins, by_method, done,  # type: ignore[arg-type]
                   rejects + rej, summary={"episodes": src, "methods": {}, "judge": judge.name,
                                           "prompt_version": judge.prompt_version, "redone_parts": redone})


async def _evaluate(ctx: StageContext, data: Datasets, judge: Judge) -> dict[str, Any]:
    cfg = ctx.cfg
    s = _read_inputs(ctx, data, judge)
    passes = await _score_pass_rates(s)
    if cfg.evaluate.reference:
        await _score_win_rates(s, passes)
    if cfg.evaluate.toolalpaca:
        await _score_toolalpaca(s)
    return _write(s)


async def _score_pass_rates(s: Scoring) -> dict[str, list[QueryPass]]:
    """ToolEval pass rate (and solvable pass rate) of each method's answers."""
    passes: dict[str, list[QueryPass]] = {}
    for method, answers in sorted(s.by_method.items()):
        passes[method] = await _pass_rate(answers, s.cfg.name, s)
        s.summary["methods"][method] = {"pass_rate": summarize(passes[method])}
        write_pass_rate_results(passes[method], s.data.report.file("toolbench", "pass_rate_results"),
                                s.cfg.name, method)
    return passes


async def _score_win_rates(s: Scoring, passes: dict[str, list[QueryPass]]) -> None:
    """Win rate against `evaluate.reference`: "method:<name>" in the same episodes, or another
    episodes dataset (its answers get a pass rate first)."""
    cfg, ev, judge = s.cfg, s.cfg.evaluate, s.judge
    assert ev.reference is not None
    if ev.reference.startswith("method:"):
        ref_name, ref = ev.reference.split(":", 1)[1], passes.get(ev.reference.split(":", 1)[1], [])
    else:
        ref_eps, bad = read_records(_dataset(cfg, ev.reference), Episode)
        s.rejects += [s.reject(str(e), e.record_id, "reference") for e in bad]
        ref_by, rej = build_answers(ref_eps, s.instructions, ev.reference, s.stage)  # type: ignore[arg-type]
        s.rejects += rej
        ref_name, ref = "reference", []
        for answers in ref_by.values():
            ref += await _pass_rate(answers, "reference", s)
    if not ref:
        s.rejects.append(s.reject(f"reference {ev.reference!r} has no scored answers: no win rate", ev.reference,
                                 "reference"))
    for method, cand in passes.items():
        if not ref or method == ref_name:
            continue
        old, todo = [], []
        for q in cand:
            rec = s.done.get(_rid("win_rate", cfg.name, method, ref_name, q.answer.query_id))
            if rec is None:
                todo.append(q)
            else:  # judged before: counted in the summary as an uninterrupted run counts it
                old.append(QueryWin(rec.query_id, rec.label, int(rec.details.get("candidate_wins", 0)),
                                    int(rec.details.get("reference_wins", 0)), rec.votes))
        answer_of = {q.answer.query_id: q.answer for q in cand}

        def record(w: QueryWin, method: str = method) -> EvalResult:
            a = answer_of[w.query_id]
            return EvalResult(
                id=_rid("win_rate", cfg.name, method, ref_name, w.query_id), query_id=w.query_id, run=cfg.name,
                method=a.method, split=a.split, metric="win_rate", label=w.label,
                score={"Win": 1.0, "Tie": 0.5, "Lose": 0.0}[w.label], votes=w.rounds,
                judge_model=judge.name, prompt_version=judge.prompt_version,
                details={"reference": ref_name, "candidate_wins": w.candidate_wins,
                         "reference_wins": w.reference_wins, "tools": a.tools})

        wins = await evaluate_win_rate(todo, ref, judge, votes=ev.votes, seed=ev.seed, concurrency=ev.concurrency,
                                       on_query=lambda w, record=record: s.commit([record(w)]))
        s.summary["methods"][method]["win_rate"] = summarize_wins(old + wins)


async def _score_toolalpaca(s: Scoring) -> None:
    """ToolAlpaca's process and response correctness against the golden answers."""
    cfg, judge = s.cfg, s.judge
    tools_list, bad = s.data.toolsets.read()
    s.rejects += [s.reject(str(e), e.record_id, e.kind) for e in bad]
    tools = {t.id: t for t in tools_list}
    for method, answers in sorted(s.by_method.items()):
        cases, old = [], []
        for a in answers:
            i = s.instructions.get(a.query_id)
            gold = alpaca.golden_answers(i, tools) if i else None  # type: ignore[arg-type]
            if gold is None:
                s.rejects.append(s.reject(f"no golden answer for instruction {a.query_id!r}: not in the ToolAlpaca "
                                         "evaluation", a.episode_id, "toolalpaca"))
                continue
            rec = s.done.get(_rid("toolalpaca", cfg.name, method, a.query_id))
            if rec is not None:
                old += rec.votes[:1]  # the judged result, as the summary counts it
                continue
            doc = "\n".join(tools[t].nl_documentation for t in i.tool_ids if t in tools)  # type: ignore[union-attr]
            cases.append(alpaca.AlpacaCase(a, i.text, doc, gold))  # type: ignore[union-attr]
        def commit(c: alpaca.AlpacaCase, r: dict[str, Any], method: str = method) -> None:
            s.commit([EvalResult(
                id=_rid("toolalpaca", cfg.name, method, c.answer.query_id), query_id=c.answer.query_id,
                run=cfg.name, method=c.answer.method, split=c.answer.split, metric="toolalpaca",
                label="Yes" if r["overall"] else "No", score=float(r["overall"]), votes=[r],
                judge_model=judge.name, prompt_version=judge.prompt_version,
                details={"process": r["process"], "response": r["response"], "episode_id": c.answer.episode_id,
                         "tools": c.answer.tools})])

        results = await alpaca.evaluate_toolalpaca(cases, judge, cfg.evaluate.concurrency, on_case=commit)
        s.summary["methods"].setdefault(method, {})["toolalpaca"] = alpaca.summarize(old + results)


def _write(s: Scoring) -> dict[str, Any]:
    """This run's rejects (each once), then the report of every record (this run's records were
    committed as their queries finished)."""
    cfg, ev = s.cfg, s.cfg.evaluate
    fresh = s.new
    # a rerun meets the same bad records again (their ids are deterministic): record each once
    seen = s.data.rejects.written_ids()
    rejects = [r for r in {r.id: r for r in s.rejects}.values() if r.id not in seen]
    if rejects:
        s.data.rejects.write(rejects)
    everything = list({**s.done, **{r.id: r for r in fresh}}.values())
    # say whose answers these are: the report of a chain is the trained model's, not the data's
    models = sorted({e.model for e in s.episodes if e.model})
    under_test = {"episodes": str(s.data.episodes.path), "models": models, "solve_with": ev.solve_with,
                  "model_dir": str(s.data.model) if ev.solve_with == "trained" else ev.solve_with}
    title = f"{cfg.name}: evaluation" + (f" of {', '.join(models)}" if models else "")
    if ev.solve_with:
        title += f" ({s.data.model if ev.solve_with == 'trained' else ev.solve_with})"
    write_report(everything, s.data.report.path, title=title, extra={"under_test": under_test})  # type: ignore[arg-type]
    summary = {**s.summary, "under_test": under_test}
    summary.update({"written": len(fresh), "reused": len(everything) - len(fresh), "rejects": len(rejects),
                    "report": str(s.data.report.file("report.md"))})
    return summary


def judge_name(cfg: RunConfig, model: ChatModel) -> str:
    role = cfg.evaluate.judge_role
    if getattr(model, "model", None):
        return str(model.model)  # type: ignore[attr-defined]
    if cfg.llm.engine == "embedded":
        return cfg.llm.embedded.served_name
    return cfg.llm.endpoint(role).model


def run(ctx: StageContext, clients: dict[str, ChatModel], data: Datasets) -> dict[str, Any]:
    """Judge `data.episodes` with role `cfg.evaluate.judge_role` (its calls under the stage's call tag)."""
    cfg = ctx.cfg
    model = (clients or {}).get(cfg.evaluate.judge_role) or (clients or {}).get("default")
    if model is None:
        raise ValueError(f"{ctx.name}: no client for role {cfg.evaluate.judge_role!r} (nor 'default')")
    judge = Judge(model, name=judge_name(cfg, model), output=cfg.evaluate.judge_output,
                  retries=cfg.evaluate.judge_retries, tag=ctx.call_tag("judge"), **judge_options(cfg.evaluate))
    return asyncio.run(_evaluate(ctx, data, judge))

