"""ToolAlpaca's evaluation (`evaluation.py`): process and final-response correctness against golden
action sequences, each Yes / No / Uncertain; "overall" is both Yes. Answers without any tool call
count as errors (No / No) without a judge call, as ToolAlpaca counts them in `error_num`.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolweave.evaluation.answers import Answer
from toolweave.evaluation.judge import Judge, gather_or_stop
from toolweave.schemas import Instruction, Tool

YES, NO, UNCERTAIN = "Yes", "No", "Uncertain"


@dataclass
class AlpacaCase:
    answer: Answer
    instruction: str
    documentation: str
    golden: list[dict[str, Any]]


def golden_answers(ins: Instruction, tools: dict[str, Tool]) -> list[dict[str, Any]] | None:
    """The instruction's golden action sequence: its own `extra`, else its tool's Golden_Answers entry."""
    for key in ("golden_answers", "Golden_Answers", "golden_answer"):
        if isinstance(ins.extra.get(key), list):
            return ins.extra[key]
    for tid in ins.tool_ids:
        t = tools.get(tid)
        if t is None:
            continue
        texts, answers = t.extra.get("Instructions") or [], t.extra.get("Golden_Answers") or []
        for text, gold in zip(texts, answers):
            if str(text).strip() == ins.text.strip() and isinstance(gold, list):
                return gold
    return None


def standard_text(golden: list[dict[str, Any]]) -> str:
    return "".join(f"{i}. Function: {g.get('Action', '')}\nParameters: {g.get('Action_Input', '')}\n"
                   for i, g in enumerate(golden, 1))


def solution_text(answer: Answer) -> str:
    lines = [f"{i}. Function: {s['name']}\nParameters: {s['arguments']}\nReturns: {str(s['response'])[:1500]}\n"
             for i, s in enumerate(answer.steps, 1)]
    return "".join(lines) + f"{len(answer.steps) + 1}. Final Response: {answer.final_answer}"


async def judge_case(judge: Judge, case: AlpacaCase) -> dict[str, Any]:
    a = case.answer
    if not a.steps:
        return {"process": NO, "response": NO, "overall": False, "reason": "no intermediate steps", "judged": False}
    v = await judge.ask("report_correctness", {"documentation": case.documentation[:6000],
                                               "instruction": case.instruction, "standard": standard_text(case.golden),
                                               "solution": solution_text(a)[:6000]}, episode=a.episode_id,
                        query=a.query_id)
    if not v.ok:
        return {"process": UNCERTAIN, "response": UNCERTAIN, "overall": False, "reason": v.reason, "judged": True,
                "judge_failed": True}
    p, r = v.values["process_correctness"], v.values["final_response_correctness"]
    return {"process": p, "response": r, "overall": p == r == YES, "reason": v.reason[:2000], "judged": True}


async def evaluate_toolalpaca(cases: list[AlpacaCase], judge: Judge, concurrency: int = 16,
                              on_case: Callable[[AlpacaCase, dict[str, Any]], None] | None = None
                              ) -> list[dict[str, Any]]:
    """Every case, at most `concurrency` at once; `on_case` gets each as soon as it is judged."""
    sem = asyncio.Semaphore(concurrency)

    async def one(c: AlpacaCase) -> dict[str, Any]:
        async with sem:
            result = await judge_case(judge, c)
        if on_case is not None:
            on_case(c, result)
        return result

    return list(await gather_or_stop(*(one(c) for c in cases)))


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(results)
    proc, resp = Counter(r["process"] for r in results), Counter(r["response"] for r in results)
    return {"queries": n, "process": {k: proc[k] for k in (YES, NO, UNCERTAIN)},
            "response": {k: resp[k] for k in (YES, NO, UNCERTAIN)},
            "process_rate": proc[YES] / n if n else 0.0, "response_rate": resp[YES] / n if n else 0.0,
            "overall_rate": sum(r["overall"] for r in results) / n if n else 0.0,
            "judge_failures": sum(bool(r.get("judge_failed")) for r in results)}
