"""ToolEval pass rate (ToolBench semantics) and StableToolBench's solvable pass rate.

One round: no Finish -> Fail, unjudged. Otherwise the judge rates the final answer (and the whole
answer when that is Unsure), then, unless the answer was Solved, whether the task is solvable; the
pair maps to Pass / Fail / Unsure (labels.pass_label) and Unsure is settled by a seeded coin.
N rounds per query; the query's label is their majority. The solvable pass rate scores the same
rounds' answer statuses (Solved 1, Unsure 0.5, Unsolved 0) without the solvability step.
"""
from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from toolweave.evaluation.answers import GIVE_UP, Answer
from toolweave.evaluation.judge import Judge, gather_or_stop
from toolweave.evaluation.labels import (FAIL, PASS, SOLVABLE_SCORE, AnswerStatus, TaskStatus, majority,
                                         pass_label, resolve, seeded)


@dataclass
class Round:
    answer_status: AnswerStatus
    task_status: TaskStatus
    label: str  # Pass / Fail / Unsure, before the coin
    resolved: str  # Pass / Fail
    reason: str = ""
    judge_calls: int = 0
    judge_failures: int = 0  # verdicts still unusable after retries (judge_failure: unsure scores them Unsure)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["answer_status"], d["task_status"] = self.answer_status.value, self.task_status.value
        return d


@dataclass
class QueryPass:
    answer: Answer
    rounds: list[Round] = field(default_factory=list)
    label: str = FAIL

    @property
    def solvable_score(self) -> float:
        return statistics.fmean(SOLVABLE_SCORE[r.answer_status] for r in self.rounds) if self.rounds else 0.0


def _task_text(answer: Answer, limit: int = 6000) -> str:
    tools = []
    for t in answer.available_tools:
        fn = t.get("function", t) if isinstance(t, dict) else {}
        tools.append({"name": fn.get("name", ""), "description": str(fn.get("description", ""))[:300]})
    text = json.dumps({"query": answer.query, "available_tools": tools}, ensure_ascii=False)
    return text[:limit]


def _inputs(judge: Judge, answer: Answer) -> dict[str, Any]:
    """What each question shows the judge. ToolEval (`style="toolbench"`): Finish's arguments as
    written, `json.dumps` of the whole converted answer, and the full `available_tools`; toolweave:
    the answer text, a cut step list and tool names with short descriptions."""
    if judge.style == "toolbench":
        return {"final": answer.toolbench_final_answer(), "details": json.dumps(answer.toolbench_answer()),
                "task": json.dumps({"query": answer.query, "available_tools": answer.available_tools})}
    return {"final": answer.final_answer[:4000], "details": answer.for_judge(), "task": _task_text(answer)}


async def answer_status(judge: Judge, answer: Answer) -> tuple[AnswerStatus, str, int, int]:
    """(status, reason, judge calls, failed verdicts) -- ToolBench's `check_is_solved`."""
    if judge.style == "toolbench":
        final = answer.toolbench_final_answer()
        if final == "" or GIVE_UP in final:
            return AnswerStatus.UNSOLVED, "Empty final answer!", 0, 0
    elif not answer.final_answer or GIVE_UP in answer.final_answer:
        return AnswerStatus.UNSOLVED, "Empty final answer!" if not answer.final_answer else "Gave up.", 0, 0
    inputs = _inputs(judge, answer)
    v = await judge.ask("check_answer_status", {"query": answer.query, "answer": inputs["final"]},
                        episode=answer.episode_id or answer.query_id, query=answer.query_id)
    calls, failures = v.attempts, int(not v.ok)
    status = AnswerStatus(v.values["answer_status"]) if v.ok else AnswerStatus.UNSURE
    reason = v.reason
    if status is AnswerStatus.UNSURE:  # look at the whole execution
        v = await judge.ask("parse_answer_status", {"query": answer.query, "answer": inputs["details"]},
                            episode=answer.episode_id or answer.query_id, query=answer.query_id)
        calls, failures = calls + v.attempts, failures + int(not v.ok)
        status = AnswerStatus(v.values["answer_status"]) if v.ok else AnswerStatus.UNSURE
        reason = v.reason if judge.style == "toolbench" else f"{reason}\n{v.reason}".strip()
    return status, reason, calls, failures


async def task_status(judge: Judge, answer: Answer, solved: bool) -> tuple[TaskStatus, str, int, int]:
    if solved:  # ToolBench: has_been_solved -> Solvable, not asked
        return TaskStatus.SOLVABLE, "Task has been solved.", 0, 0
    v = await judge.ask("check_task_solvable", {"task": _inputs(judge, answer)["task"]},
                        episode=answer.episode_id or answer.query_id, query=answer.query_id)
    status = TaskStatus(v.values["task_status"]) if v.ok else TaskStatus.UNSURE
    return status, v.reason, v.attempts, int(not v.ok)


async def judge_round(judge: Judge, answer: Answer, seed: int, round_no: int) -> Round:
    rng = seeded(seed, "pass", answer.query_id, answer.method, round_no)
    if not answer.finished:
        return Round(AnswerStatus.UNSOLVED, TaskStatus.SOLVABLE, FAIL, FAIL, "No answer")
    a, a_reason, a_calls, a_fail = await answer_status(judge, answer)
    t, t_reason, t_calls, t_fail = await task_status(judge, answer, a is AnswerStatus.SOLVED)
    label = pass_label(a, t)
    return Round(a, t, label, resolve(label, rng), f"Is solved: {a_reason}\nTask solvable: {t_reason}",
                 a_calls + t_calls, a_fail + t_fail)


async def evaluate_pass_rate(answers: list[Answer], judge: Judge, *, votes: int = 4, seed: int = 0,
                             concurrency: int = 16, tie: str | None = None,
                             on_query: Callable[[QueryPass], None] | None = None) -> list[QueryPass]:
    """All rounds of all answers, at most `concurrency` judge conversations at once. `tie`: how a
    query whose rounds split evenly is labelled ("coin", or "pass" as ToolBench's pass rate counts it;
    None: the judge's `tie`). `on_query` gets each query as soon as all its rounds are judged (the
    stage commits it then, so a crash loses only the queries in progress)."""
    tie = tie or judge.tie
    sem = asyncio.Semaphore(concurrency)

    async def one(answer: Answer, r: int) -> Round:
        async with sem:
            return await judge_round(judge, answer, seed, r)

    async def query(answer: Answer) -> QueryPass:
        rounds = list(await gather_or_stop(*(one(answer, r) for r in range(votes))))
        qp = QueryPass(answer, rounds, majority([r.resolved for r in rounds],
                                                seeded(seed, "majority", answer.query_id, answer.method), tie))
        if on_query is not None:
            on_query(qp)
        return qp

    return list(await gather_or_stop(*(query(a) for a in answers)))


def summarize(results: list[QueryPass]) -> dict[str, Any]:
    """Pass rate (majority labels), and mean +- std over the N judgment rounds of both rates."""
    if not results:
        return {"queries": 0}
    n_rounds = min(len(q.rounds) for q in results)
    per_round = [statistics.fmean(q.rounds[r].resolved == PASS for q in results) for r in range(n_rounds)]
    solv_round = [statistics.fmean(SOLVABLE_SCORE[q.rounds[r].answer_status] for q in results)
                  for r in range(n_rounds)]
    return {
        "queries": len(results),
        "pass_rate": statistics.fmean(q.label == PASS for q in results),
        "pass_rate_mean": statistics.fmean(per_round) if per_round else 0.0,
        "pass_rate_std": statistics.pstdev(per_round) if per_round else 0.0,
        "solvable_pass_rate_mean": statistics.fmean(solv_round) if solv_round else 0.0,
        "solvable_pass_rate_std": statistics.pstdev(solv_round) if solv_round else 0.0,
        "judge_calls": sum(r.judge_calls for q in results for r in q.rounds),
        "judge_failures": sum(r.judge_failures for q in results for r in q.rounds),
    }
