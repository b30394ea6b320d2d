"""ToolEval's labels and how they combine (ToolBench / StableToolBench `rtl.py`, `eval_pass_rate.py`).

A pass-rate judgment is a pair (answer status, task status) mapped to Pass / Fail / Unsure;
Unsure is settled by a seeded coin, and the N rounds of a query by majority (a tie by a coin).
"""
from __future__ import annotations

import random
from enum import Enum


class AnswerStatus(str, Enum):
    SOLVED = "Solved"
    UNSOLVED = "Unsolved"
    UNSURE = "Unsure"

    def __str__(self) -> str:  # the form StableToolBench writes: "AnswerStatus.Solved"
        return f"AnswerStatus.{self.value}"


class TaskStatus(str, Enum):
    SOLVABLE = "Solvable"
    UNSOLVABLE = "Unsolvable"
    UNSURE = "Unsure"

    def __str__(self) -> str:
        return f"TaskStatus.{self.value}"


PASS, FAIL, UNSURE = "Pass", "Fail", "Unsure"

# (answer status, task status) -> label; exactly ToolBench's `is_passed`
_PASS_TABLE: dict[tuple[AnswerStatus, TaskStatus], str] = {
    (AnswerStatus.UNSOLVED, TaskStatus.SOLVABLE): FAIL,
    (AnswerStatus.UNSOLVED, TaskStatus.UNSURE): UNSURE,
    (AnswerStatus.UNSOLVED, TaskStatus.UNSOLVABLE): PASS,
    (AnswerStatus.UNSURE, TaskStatus.SOLVABLE): UNSURE,
    (AnswerStatus.UNSURE, TaskStatus.UNSURE): UNSURE,
    (AnswerStatus.UNSURE, TaskStatus.UNSOLVABLE): PASS,
}

# StableToolBench's solvable pass rate scores the answer status alone
SOLVABLE_SCORE = {AnswerStatus.SOLVED: 1.0, AnswerStatus.UNSURE: 0.5, AnswerStatus.UNSOLVED: 0.0}


def pass_label(answer: AnswerStatus, task: TaskStatus | None) -> str:
    """Pass / Fail / Unsure. A solved answer passes whatever the task status (it is then not asked)."""
    if answer is AnswerStatus.SOLVED:
        return PASS
    if task is None:
        raise ValueError(f"answer status {answer.value} needs a task status")
    return _PASS_TABLE[(answer, task)]


def coin(rng: random.Random) -> str:
    return PASS if rng.random() < 0.5 else FAIL


def resolve(label: str, rng: random.Random) -> str:
    """Unsure -> Pass or Fail by a fair coin (ToolBench: `random.random() < 0.5`)."""
    return coin(rng) if label == UNSURE else label


def majority(labels: list[str], rng: random.Random, tie: str = "coin") -> str:
    """Pass if more rounds passed than failed, Fail if fewer; a tie is a coin, or Pass with
    `tie="pass"` (ToolBench's pass rate counts `failed <= passed`; only its CSV label flips a coin)."""
    passed = sum(1 for x in labels if x == PASS)
    failed = sum(1 for x in labels if x == FAIL)
    if passed != failed:
        return PASS if passed > failed else FAIL
    if tie == "pass":
        return PASS
    if tie != "coin":
        raise ValueError(f"tie must be 'coin' or 'pass', got {tie!r}")
    return coin(rng)


def seeded(seed: int, *key: object) -> random.Random:
    """An RNG per (seed, query, round, ...): results do not depend on the order judgments finish."""
    return random.Random(":".join(str(k) for k in (seed, *key)))
