"""Win rate of a candidate run against a reference run (ToolBench `eval_preference.py` + `rtl.py`).

Per round: where exactly one side passed (pass-rate labels), that side wins without a judge call.
Otherwise the two answers are shown in a seeded random order -- their answer statuses permuted
with them -- and the better one is picked: the only Solved one, else the only Unsure one, else the
judge's `select_better_answer` (identical answers: a coin). Over N rounds the side with more wins
takes the query; equal counts are a tie.

`status="recheck"` (ToolBench's eval_preference.py with use_pass_rate false, the toolbench preset)
asks `check_is_solved` again for both answers in every round instead of reusing the pass-rate
rounds' most frequent status; with a `toolbench`-style judge the answers are shown as its
`process_answer` leaves them (final answer cut at 1000 characters, full details, no "method").
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolweave.evaluation.answers import Answer
from toolweave.evaluation.judge import Judge, gather_or_stop
from toolweave.evaluation.labels import PASS, AnswerStatus, seeded
from toolweave.evaluation.pass_rate import QueryPass, answer_status

WIN, LOSE, TIE = "Win", "Lose", "Tie"
CANDIDATE, REFERENCE = 0, 1  # positions before shuffling


@dataclass
class Side:
    answer: Answer
    passed: str  # Pass / Fail (majority pass-rate label)
    status: AnswerStatus  # most frequent answer status over the pass-rate rounds

    @classmethod
    def of(cls, qp: QueryPass) -> "Side":
        statuses = Counter(r.answer_status for r in qp.rounds)
        status = statuses.most_common(1)[0][0] if statuses else AnswerStatus.UNSOLVED
        return cls(qp.answer, qp.label, status)


@dataclass
class QueryWin:
    query_id: str
    label: str  # Win / Lose / Tie (for the candidate)
    candidate_wins: int = 0
    reference_wins: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)


def _identical(a: Answer, b: Answer) -> bool:
    return a.final_answer == b.final_answer and a.steps == b.steps


async def _select(judge: Judge, query: str, shown: list[Side], rng, episode: str) -> tuple[int | None, str]:
    """Index (into `shown`) of the better answer, and how it was decided; None = no usable verdict."""
    solved = [i for i, s in enumerate(shown) if s.status is AnswerStatus.SOLVED]
    if len(solved) == 1:
        return solved[0], "only one solved"
    if not solved:
        unsure = [i for i, s in enumerate(shown) if s.status is AnswerStatus.UNSURE]
        if len(unsure) == 1:
            return unsure[0], "only one unsure"
    if _identical(shown[0].answer, shown[1].answer):
        return rng.randrange(2), "identical answers: coin"
    if judge.style == "toolbench":
        texts = [json.dumps(s.answer.toolbench_answer()) for s in shown]
    else:
        texts = [s.answer.for_judge(3000) for s in shown]
    v = await judge.ask("select_better_answer", {"query": query, "answer_0": texts[0], "answer_1": texts[1]},
                        episode=episode, query=shown[0].answer.query_id)
    if not v.ok:
        return None, v.reason
    return int(v.values["index"]), f"judge: {v.reason}"[:500]


def _preference_view(side: Side, judge: Judge) -> Side:
    if judge.style != "toolbench":
        return side
    return dataclasses.replace(side, answer=dataclasses.replace(side.answer, toolbench_view="preference"))


async def compare_round(judge: Judge, cand: Side, ref: Side, seed: int, round_no: int,
                        status: str = "pass_rate") -> dict[str, Any]:
    """One round; `winner` is "candidate", "reference" or None (judge gave nothing usable)."""
    if cand.passed != ref.passed:
        winner = "candidate" if cand.passed == PASS else "reference"
        return {"winner": winner, "how": "pass label", "order": None}
    rng = seeded(seed, "win", cand.answer.query_id, cand.answer.method, round_no)
    order = [CANDIDATE, REFERENCE]
    rng.shuffle(order)
    sides = (_preference_view(cand, judge), _preference_view(ref, judge))
    shown = [sides[i] for i in order]  # the statuses travel with their answers
    if status == "recheck":  # the solved check again, this round, on the answers as shown
        shown = [dataclasses.replace(s, status=(await answer_status(judge, s.answer))[0]) for s in shown]
    picked, how = await _select(judge, cand.answer.query, shown, rng, cand.answer.episode_id)
    if picked is None:
        return {"winner": None, "how": how, "order": order}
    return {"winner": "candidate" if order[picked] == CANDIDATE else "reference", "how": how, "order": order}


async def evaluate_win_rate(candidates: list[QueryPass], references: list[QueryPass], judge: Judge, *,
                            votes: int = 4, seed: int = 0, concurrency: int = 16,
                            status: str | None = None,
                            on_query: Callable[[QueryWin], None] | None = None) -> list[QueryWin]:
    """Queries present in both runs, matched by query id. `status`: "pass_rate" reuses the pass-rate
    rounds' answer status, "recheck" asks again in every round (ToolBench); None: the judge's
    `win_status`. The judge's `win_votes`, when set, is the number of rounds (ToolBench: 2).
    `on_query` gets each query as soon as its rounds are judged."""
    status = status or judge.win_status
    votes = judge.win_votes or votes
    refs = {q.answer.query_id: q for q in references}
    pairs = [(Side.of(c), Side.of(refs[c.answer.query_id])) for c in candidates if c.answer.query_id in refs]
    sem = asyncio.Semaphore(concurrency)

    async def one(c: Side, r: Side, k: int) -> dict[str, Any]:
        async with sem:
            return await compare_round(judge, c, r, seed, k, status)

    async def query(c: Side, r: Side) -> QueryWin:
        mine = list(await gather_or_stop(*(one(c, r, k) for k in range(votes))))
        cw = sum(x["winner"] == "candidate" for x in mine)
        rw = sum(x["winner"] == "reference" for x in mine)
        won = QueryWin(c.answer.query_id, WIN if cw > rw else LOSE if rw > cw else TIE, cw, rw, mine)
        if on_query is not None:
            on_query(won)
        return won

    return list(await gather_or_stop(*(query(c, r) for c, r in pairs)))


def summarize(results: list[QueryWin]) -> dict[str, Any]:
    n = len(results)
    if not n:
        return {"queries": 0}
    count = Counter(r.label for r in results)
    return {"queries": n, "win_rate": count[WIN] / n, "tie_rate": count[TIE] / n, "lose_rate": count[LOSE] / n,
            # rounds the judge left undecided (judge_failure: unsure); they count for neither side
            "judge_failures": sum(x["winner"] is None for r in results for x in r.rounds),
            # ToolBench counts a tie as half a win when it reports one number
            "win_rate_ties_half": (count[WIN] + 0.5 * count[TIE]) / n}


def preference_json(results: list[QueryWin], reference: str, candidate: str) -> dict[str, Any]:
    """StableToolBench's `preference_results/<set>_<ref>_<out>.json` shape."""
    out = {}
    for r in results:
        d: dict[str, Any] = {reference: r.reference_wins, candidate: r.candidate_wins}
        for k, x in enumerate(r.rounds):
            d[f"round_{k}"] = "complete" if x["winner"] is not None else "incomplete"
        out[r.query_id] = d
    return out

