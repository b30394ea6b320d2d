"""StableToolBench's published result files read as its own scripts read them.

- `pass_rate_results/<model>/<set>_<model>.json` (eval_pass_rate.py's saved labels): per query, the
  answer status of each judging round. `solve_rate` is what eval_pass_rate.py prints from it: for
  each of `evaluate_times` runs, Solved 1, Unsure 0.5, anything else or a missing round 0, over all
  queries of the file; the mean and the population std of the runs, in percent.
- `pass_rate_results/.../*.csv` (what eval_preference.py's `get_pass_rate_results` reads): `is_solved`
  is the text of the rounds' dict, kept as the reference returns it (its `== "AnswerStatus.Solved"`
  shortcut never matches such a cell) and parsed into rounds. The reference also returns the header
  row as a query named "query_id"; that row is not a query and is not returned here.
- `preference_results/<set>_<ref>_<out>.json`: per query, each model's round wins; `preference_rates`
  is what eval_preference.py prints (win: the candidate has more, lose: fewer, tie: equal).
A file or record of another shape is a ValueError naming the file and the query.
"""
from __future__ import annotations

import ast
import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolweave import safe_read

SCORES = {"AnswerStatus.Solved": 1.0, "AnswerStatus.Unsure": 0.5}


@dataclass(frozen=True)
class PublishedPass:
    query_id: str
    query: str
    rounds: dict[int, str]  # round -> "AnswerStatus.Solved" / "AnswerStatus.Unsolved" / "AnswerStatus.Unsure"
    is_solved_text: str = ""  # the CSV cell as the reference reads it (CSV files only)


def _load_json(path: str | Path) -> Any:
    try:
        return json.loads(safe_read.read_text(Path(path)))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON file: {e}") from None


def _rounds(path: str | Path, qid: str, raw: Any) -> dict[int, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValueError(f"{path}: query {qid}: is_solved is not a map of round -> answer status: {raw!r:.120}")
    try:
        return {int(k): v for k, v in raw.items()}
    except ValueError:
        raise ValueError(f"{path}: query {qid}: a round that is not a number in {sorted(raw)!r:.120}") from None


def read_pass_rate_json(path: str | Path) -> list[PublishedPass]:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected eval_pass_rate.py's object keyed by query id")
    out = []
    for qid, row in data.items():
        if not isinstance(row, dict) or "is_solved" not in row:
            raise ValueError(f"{path}: query {qid}: no is_solved")
        out.append(PublishedPass(str(qid), str(row.get("query", "")), _rounds(path, qid, row["is_solved"])))
    return out


def read_pass_rate_csv(path: str | Path) -> list[PublishedPass]:
    text = safe_read.read_text(Path(path))
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows or not {"query", "query_id", "is_solved"} <= set(rows[0]):
        raise ValueError(f"{path}: not a pass-rate CSV (tab-separated, with query, query_id and is_solved columns)")
    col = {name: i for i, name in enumerate(rows[0])}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < len(rows[0]):
            raise ValueError(f"{path}: line {n}: {len(row)} cells, the header has {len(rows[0])}")
        qid, cell = row[col["query_id"]], row[col["is_solved"]]
        try:
            raw = ast.literal_eval(cell)  # eval_pass_rate.py writes the dict's repr
        except (ValueError, SyntaxError):
            raise ValueError(f"{path}: query {qid}: is_solved {cell!r:.120} is not a dict of rounds") from None
        out.append(PublishedPass(qid, row[col["query"]], _rounds(path, qid, raw), cell))
    return out


def solve_rate(passes: list[PublishedPass], evaluate_times: int) -> tuple[float, float]:
    """(mean, std) in percent, as eval_pass_rate.py prints them (`--evaluate_times`: its default is 4,
    run_pass_rate.sh gives 3; a round a query lacks scores 0)."""
    if not passes:
        raise ValueError("no queries to score")
    runs = [sum(SCORES.get(p.rounds.get(r, ""), 0.0) for p in passes) / len(passes) for r in range(evaluate_times)]
    return statistics.fmean(runs) * 100, statistics.pstdev(runs) * 100


def preference_rates(path: str | Path, reference: str, candidate: str) -> dict[str, float]:
    """{"win", "tie", "lose"} of the candidate over the file's queries, as eval_preference.py counts them."""
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected eval_preference.py's non-empty object keyed by query id")
    counts = {"win": 0, "tie": 0, "lose": 0}
    for qid, row in data.items():
        try:
            ref, out = int(row[reference]), int(row[candidate])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: query {qid}: no win counts for {reference!r} and {candidate!r}") from None
        counts["lose" if ref > out else "win" if ref < out else "tie"] += 1
    return {k: v / len(data) for k, v in counts.items()}
