"""Results in StableToolBench's file shapes, so its tools (and people used to them) can read ours.

`pass_rate_results/<model>/<set>_<model>.{json,csv}` and
`preference_results/<set>_<ref>_<out>.{json,csv}` (tab-separated, as `eval_pass_rate.py` writes them).
"""
from __future__ import annotations

import csv
import io as textio
import json
import logging
from pathlib import Path

from toolweave import io
from toolweave.evaluation.pass_rate import QueryPass
from toolweave.evaluation.win_rate import QueryWin, preference_json
from toolweave.schemas import RecordError

log = logging.getLogger(__name__)

PASS_RATE_COLUMNS = ["query", "available_tools", "model_intermediate_steps", "model_final_step", "model",
                     "query_id", "is_solved"]
PREFERENCE_COLUMNS = ["query", "available_tools", "ref_model_intermediate_steps", "ref_model_final_step",
                      "output_model_intermediate_steps", "output_model_final_step", "preference_label",
                      "query_id", "ref_model", "output_model"]


def _steps(answer) -> tuple[str, str]:
    """ToolEval's step texts of an answer; one whose episode its converter cannot read (a call with no
    reply after it, say) gets none, said with the query and the reason (the verdicts stand)."""
    try:
        return answer.steps_text()
    except RecordError as e:
        log.warning("ToolEval result files: query %s (%s) has no steps: %s", answer.query_id, answer.method, e)
        return "", ""


def write_pass_rate_results(results: list[QueryPass], out_dir: str | Path, test_set: str, model: str) -> tuple[Path, Path]:
    out = Path(out_dir) / model
    data, rows = {}, []
    for q in results:
        a = q.answer
        steps, final = _steps(a)
        is_solved = {k: str(r.answer_status) for k, r in enumerate(q.rounds)}
        data[a.query_id] = {"query": a.query, "tool_names": a.tool_names, "answer_steps": steps,
                            "final_step": final, "is_solved": {str(k): v for k, v in is_solved.items()}}
        rows.append([a.query, str(a.tool_names), steps, final, model, a.query_id, str(is_solved)])
    jpath, cpath = out / f"{test_set}_{model}.json", out / f"{test_set}_{model}.csv"
    io.write_text(jpath, json.dumps(data, ensure_ascii=False, indent=4))  # a local dir or an object store
    io.write_text(cpath, _tsv(PASS_RATE_COLUMNS, rows))
    return jpath, cpath


def _tsv(columns: list[str], rows: list[list[str]]) -> str:
    buf = textio.StringIO(newline="")
    w = csv.writer(buf, delimiter="\t")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def write_preference_results(wins: list[QueryWin], candidates: list[QueryPass], references: list[QueryPass],
                             out_dir: str | Path, test_set: str, reference: str, candidate: str) -> tuple[Path, Path]:
    out = Path(out_dir)
    cand = {q.answer.query_id: q.answer for q in candidates}
    ref = {q.answer.query_id: q.answer for q in references}
    stem = f"{test_set}_{reference}_{candidate}"
    jpath, cpath = out / f"{stem}.json", out / f"{stem}.csv"
    io.write_text(jpath, json.dumps(preference_json(wins, reference, candidate), ensure_ascii=False, indent=4))
    rows = []
    for r in wins:
        a, b = ref[r.query_id], cand[r.query_id]
        (rs, rf), (cs, cf) = _steps(a), _steps(b)
        # 1: reference preferred, 2: output preferred, 3: equal (StableToolBench's codes)
        label = 1 if r.reference_wins > r.candidate_wins else 2 if r.candidate_wins > r.reference_wins else 3
        rows.append([a.query, str(a.tool_names), rs, rf, cs, cf, str(label), r.query_id, reference, candidate])
    io.write_text(cpath, _tsv(PREFERENCE_COLUMNS, rows))
    return jpath, cpath
