"""A run's report: one table per metric (split x method), plots, as Markdown, the numbers as JSON and
Parquet, and report.html, the run's front page (`toolweave.reporting.front_page`). Splits are ToolBench's held-out groups: `I1 Inst`, `I2 Tool`, `I3 Cat`, ...
Each row names its tool setting (`tools`: ToolBench's "oracle", the given tools, or "retriever"); when
a report has retriever rows, each method's two settings are columns side by side (`dfsdt (oracle)`,
`dfsdt (retriever)`).
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from toolweave import io
from toolweave.reporting.front_page import write_front_page
from toolweave.schemas import EvalResult
from toolweave.secrets import redact, redact_obj

SPLIT_NAMES = {"test_inst": "Inst", "test_tool": "Tool", "test_cat": "Cat", "train": "Train"}
ALL = "all"
ORACLE = "oracle"  # records from before the setting was recorded were solved with the given tools


def split_label(mode: str, split: str) -> str:
    name = SPLIT_NAMES.get(split, split or "?")
    return f"{mode} {name}" if mode and mode != "single" else name


def summary_rows(results: list[EvalResult]) -> list[dict[str, Any]]:
    """One row per (metric, method, tool setting, split) plus the `all` split: mean score, std over
    judgment rounds (pass rates), counts, and LLM cost per solved query."""
    groups: dict[tuple[str, str, str, str], list[EvalResult]] = defaultdict(list)
    for r in results:
        tools = str(r.details.get("tools") or ORACLE)
        groups[(r.metric, r.method, tools, r.split or "?")].append(r)
        groups[(r.metric, r.method, tools, ALL)].append(r)
    rows = []
    for (metric, method, tools, split), rs in sorted(groups.items()):
        row: dict[str, Any] = {"metric": metric, "method": method, "tools": tools, "split": split, "queries": len(rs),
                               "value": statistics.fmean(r.score for r in rs), "std": None,
                               "llm_calls_per_solved": None, "tokens_per_solved": None}
        if metric == "pass_rate":
            rounds = [[v.get("resolved") == "Pass" for v in r.votes] for r in rs if r.votes]
            n = min((len(x) for x in rounds), default=0)
            if n:
                per_round = [statistics.fmean(x[k] for x in rounds) for k in range(n)]
                row["std"] = statistics.pstdev(per_round)
            solved = [r for r in rs if r.label == "Pass"]
            if solved:
                row["llm_calls_per_solved"] = sum(r.details.get("llm_calls", 0) for r in rs) / len(solved)
                row["tokens_per_solved"] = sum(r.details.get("tokens", 0) for r in rs) / len(solved)
        if metric == "win_rate":
            for lab in ("Win", "Tie", "Lose"):
                row[lab.lower()] = sum(r.label == lab for r in rs) / len(rs)
        rows.append(row)
    return rows


def _column(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A row's column: its method, with its tool setting when the report has more than the oracle's."""
    if all(r.get("tools", ORACLE) == ORACLE for r in rows):
        return row["method"]
    return f"{row['method']} ({row.get('tools', ORACLE)})"


def _table(rows: list[dict[str, Any]], metric: str) -> tuple[list[str], list[str], dict]:
    mine = [r for r in rows if r["metric"] == metric]
    methods = sorted({_column(r, rows) for r in mine})
    splits = sorted({r["split"] for r in mine}, key=lambda s: (s == ALL, s))
    cell = {}
    for r in mine:
        v = f"{100 * r['value']:.1f}"
        if r.get("std") is not None:
            v += f" ± {100 * r['std']:.1f}"
        if metric == "win_rate":
            v += f" (tie {100 * r['tie']:.0f})"
        cell[(r["split"], _column(r, rows))] = f"{v} (n={r['queries']})"
    return methods, splits, cell


def _plots(rows: list[dict[str, Any]], out: Path, title: str = "") -> list[str]:
    import matplotlib
    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    made = []
    for metric, fname in (("pass_rate", "pass_rate.png"), ("solvable_pass_rate", "solvable_pass_rate.png"),
                          ("toolalpaca", "toolalpaca.png")):
        methods, splits, _ = _table(rows, metric)
        if not methods:
            continue
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(splits) * len(methods)), 3.5))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals = [next((r for r in rows if (r["metric"], _column(r, rows), r["split"]) == (metric, m, s)), None)
                    for s in splits]
            ys = [100 * v["value"] if v else 0 for v in vals]
            err = [100 * v["std"] if v and v.get("std") is not None else 0 for v in vals]
            bars = ax.bar([x + i * width for x in range(len(splits))], ys, width, yerr=err, label=m, capsize=3)
            # the value on each bar: a 0 % bar is otherwise indistinguishable from a missing one
            ax.bar_label(bars, labels=[f"{y:.0f}% (n={v['queries']})" if v else "" for y, v in zip(ys, vals)],
                         fontsize=7, padding=2)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(splits))], splits)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, 110)
        if title:
            import textwrap
            ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        made.append(fname)
    win = [r for r in rows if r["metric"] == "win_rate"]
    if win:
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(win)))
        labels = [f"{_column(r, rows)} / {r['split']}" for r in win]
        left = [0.0] * len(win)
        for lab, color in (("win", "tab:green"), ("tie", "tab:gray"), ("lose", "tab:red")):
            vals = [100 * r[lab] for r in win]
            ax.barh(labels, vals, left=left, color=color, label=lab)
            left = [a + b for a, b in zip(left, vals)]
        ax.set_xlabel("% of queries against the reference")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "win_rate.png", dpi=100)
        plt.close(fig)
        made.append("win_rate.png")
    cost = [r for r in rows if r["metric"] == "pass_rate" and r["split"] == ALL and r["llm_calls_per_solved"]]
    if cost:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
        a1.bar([_column(r, rows) for r in cost], [r["llm_calls_per_solved"] for r in cost])
        a1.set_title("LLM calls per solved query", fontsize=9)
        a2.bar([_column(r, rows) for r in cost], [r["tokens_per_solved"] for r in cost], color="tab:orange")
        a2.set_title("tokens per solved query", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "cost.png", dpi=100)
        plt.close(fig)
        made.append("cost.png")
    return made


def write_report(results: list[EvalResult], out_dir: str | Path, title: str = "toolweave evaluation",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.md, report.html, PNGs, summary.json and summary.parquet under out_dir (a local dir, or
    an object-store URI: the files are made in a local dir, as matplotlib writes them, then uploaded)."""
    # the front page reads the run dir where it is (in the store), and this evaluation from `out`
    run_dir = io.location(out_dir).rstrip("/").rpartition("/")[0] if io.is_remote(out_dir) else Path(out_dir).parent
    with io.local_dir_for(out_dir, "toolweave-report-") as out:
        return _write_report(results, out, title, extra, run_dir=run_dir)


def _write_report(results: list[EvalResult], out: Path, title: str, extra: dict[str, Any] | None,
                  run_dir: str | Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    pngs = _plots(rows, out, title)
    judges = sorted({f"{r.judge_model} ({r.prompt_version})" for r in results if r.judge_model})
    md = [f"# {title}", "", f"Judge: {', '.join(judges) or 'none'}. Values in %; pass rates: mean over queries of "
          "the majority label ± std over judgment rounds.", ""]
    for metric in sorted({r["metric"] for r in rows}):
        methods, splits, cell = _table(rows, metric)
        md += [f"## {metric}", "", "| split | " + " | ".join(methods) + " |",
               "|---|" + "---|" * len(methods)]
        md += [f"| {s} | " + " | ".join(cell.get((s, m), "") for m in methods) + " |" for s in splits]
        md.append("")
    cost = [r for r in rows if r["metric"] == "pass_rate" and r["split"] == ALL]
    if cost:
        md += ["## cost", "", "| method | LLM calls / solved | tokens / solved |", "|---|---|---|"]
        md += [f"| {_column(r, rows)} | {r['llm_calls_per_solved'] or 0:.1f} | {r['tokens_per_solved'] or 0:.0f} |"
               for r in cost]
        md.append("")
    for p in pngs:
        md.append(f"![{p}]({p})")
    (out / "report.md").write_text(redact("\n".join(md) + "\n"), encoding="utf-8")
    rows = redact_obj(rows)
    summary = redact_obj({"title": title, "judges": judges, "rows": rows, "plots": pngs, **(extra or {})})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    # report.html is the run's front page (chain, dataset, this evaluation, sample episodes), one file
    write_front_page(run_dir, out / "report.html", title=title, eval_dir=out)
    pq.write_table(pa.Table.from_pylist(rows), out / "summary.parquet")
    return summary


def before_after_html(rows: list[dict[str, Any]], judge: str = "", title: str = "") -> str:
    """The base-vs-trained table (toolweave.evaluation.tool_use.compare rows) as an HTML section."""
    from html import escape

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    def ci(r: dict[str, Any]) -> str:
        return "-" if r["ci_low"] is None else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
    body = "".join(
        f"<tr><td>{escape(r['metric'] + (f' ({judge}-judged)' if r['metric'] == 'judge_pass' and judge else ''))}"
        f"</td><td>{cell(r['base'])}</td><td>{cell(r['trained'])}</td><td>{cell(r['difference'])}</td>"
        f"<td>{ci(r)}</td>"
        f"<td>{r['n_base']} / {r['n_trained']}</td></tr>" for r in rows)
    return (f"<h2 id=before-after>Base vs trained</h2><p class=muted>{escape(title)}; 95% bootstrap CI of the "
            "difference over queries; the call rates are pooled over the model's replies.</p>"
            "<table id=before-after-table><tr><th>metric</th><th>base</th><th>trained</th><th>difference</th>"
            f"<th>95% CI</th><th>queries (base / trained)</th></tr>{body}</table>")


RATE_METRICS = ("well_formed", "relevant_api", "schema_valid", "finish_answer", "judge_pass")


def before_after_plot(rows: list[dict[str, Any]], title: str = "") -> bytes | None:
    """Base and trained per rate metric (%), the trained bar's whisker the 95% CI of the difference
    laid on the base value; PNG bytes, or None without a rate row."""
    rates = [r for r in rows if r["metric"] in RATE_METRICS and r["base"] is not None and r["trained"] is not None]
    if not rates:
        return None
    import io as bytes_io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = range(len(rates))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rates)), 3.5))
    base = ax.bar([x - 0.2 for x in xs], [100 * r["base"] for r in rates], 0.4, label="base")
    ax.bar_label(base, labels=[f"{100 * r['base']:.0f}%" for r in rates], fontsize=7, padding=2)  # 0 %: visible
    low = [100 * (r["difference"] - r["ci_low"]) if r["ci_low"] is not None else 0 for r in rates]
    high = [100 * (r["ci_high"] - r["difference"]) if r["ci_high"] is not None else 0 for r in rates]
    bars = ax.bar([x + 0.2 for x in xs], [100 * r["trained"] for r in rates], 0.4, yerr=[low, high], capsize=3,
                  label="trained")
    ax.bar_label(bars, labels=[f"{100 * r['trained']:.0f}%" for r in rates], fontsize=7, padding=2)
    ax.set_xticks(list(xs), [r["metric"] for r in rates], fontsize=8)
    ax.set_ylabel("% of replies / queries")
    ax.set_ylim(0, 110)
    if title:
        import textwrap
        ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = bytes_io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_before_after(report_dir: str | Path, rows: list[dict[str, Any]], judge: str = "", title: str = "") -> None:
    """before_after.json / .md / .png beside the report, and the table and plot in report.html before the sample episodes
    (the report of the trained model's evaluation; the base model's is in the benchmark's base run)."""
    from toolweave.evaluation.tool_use import table_text
    io.write_text(io.join(report_dir, "before_after.json"),
                  json.dumps({"title": title, "judge": judge, "rows": rows}, indent=2))
    io.write_text(io.join(report_dir, "before_after.md"), f"# {title}\n\n{table_text(rows, judge)}\n")
    png = before_after_plot(rows, title)
    if png is not None:
        io.write_bytes(io.join(report_dir, "before_after.png"), png)
    page_path = io.join(report_dir, "report.html")
    page = io.read_text(page_path)
    if page is None:
        return
    section = before_after_html(rows, judge, title)
    if png is not None:
        import base64
        section += f'<img id=before-after-plot src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    marker = "<h2 id=samples>"
    page = page.replace(marker, section + marker, 1) if marker in page else page.replace("</body>", section + "</body>")
    io.write_text(page_path, page)
