"""The run's front page: one self-contained HTML file (inline CSS, PNGs as data URIs, no script, no
server, no CDN) that a user opens after a run.

Sections: the chain as a funnel (per stage: inputs, outputs, rejects by reason, LLM calls, tokens,
cost, time; read from `<stage>_summary.json` and `run_summary.json`), the dataset statistics and plots
(`dataset/`), the evaluation (`report/summary.json` and its PNGs) and a browser of sample episodes:
a DFSDT tree as nested `<details>` (each node: request, reply, observation) and a simulation turn by
turn. Everything is readable without JavaScript; `<details>` opens natively.

The run dir is read through `toolweave.io`: a local path and an object-store URI (`s3://...`) give
the same page.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from toolweave import io, secrets
from toolweave.schemas import Episode, VerifiedEpisode

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#4c72b0;height:.9em;display:inline-block;vertical-align:middle}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
details{margin:.2em 0 .2em 1em;border-left:2px solid #ddd;padding-left:.6em}summary{cursor:pointer}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.4em;margin:.2em 0;max-height:24em;
overflow:auto}.ok{color:#2a7}.bad{color:#c33}.muted{color:#777}.role{font-weight:600}
"""
MAX_TEXT = 4000  # characters of one message shown


def esc(value: Any) -> str:
    return html.escape(str(value))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def img(name: str, png: bytes) -> str:
    return f'<img src="{data_uri(png)}" alt="{esc(name.removesuffix(".png"))}" data-name="{esc(name)}">'


def _json(path: str | Path) -> Any:
    """A JSON file of the run dir (local or in an object store); None when it is not there."""
    text = io.read_text(path)
    return None if text is None else json.loads(text)


def _imgs(directory: str | Path, names: list[str]) -> str:
    """The named PNGs of a directory, inline; missing ones left out."""
    pngs = ((name, io.read_bytes(io.join(directory, name))) for name in names)
    return "".join(img(name, png) for name, png in pngs if png is not None)


def _pre(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, indent=1)
    return f"<pre>{esc(text[:MAX_TEXT] + ('...' if len(text) > MAX_TEXT else ''))}</pre>"


# --- funnel ----------------------------------------------------------------------------------

_OUT_KEYS = ("outputs", "instructions", "tools", "rows", "episodes", "verified", "queries")
_REJECT_KEYS = ("failed", "rejected", "duplicates", "near_duplicates")


def stage_summaries(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Stage -> its summary, in the order they ran: run_summary.json (written in chain order), then
    `<stage>_summary.json` files of stages run on their own, oldest first."""
    found: dict[str, dict[str, Any]] = {}
    run_summary = _json(io.join(run_dir, "run_summary.json"))
    if isinstance(run_summary, dict):
        found.update({k: v for k, v in run_summary.items() if isinstance(v, dict)})
    summaries = [e for e in io.list_files(run_dir) if e.name.endswith("_summary.json") and e.name != "run_summary.json"]
    for entry in sorted(summaries, key=lambda e: e.mtime or 0.0):
        found.setdefault(entry.name[: -len("_summary.json")], json.loads(io.read_text(entry.path) or "{}"))
    return found


def _first(summary: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((summary[k] for k in keys if isinstance(summary.get(k), int | float)), None)


def funnel(stages: dict[str, dict[str, Any]]) -> str:
    if not stages:
        return "<p class=muted>No stage summaries in this run directory.</p>"
    outs = [_first(s, _OUT_KEYS) or 0 for s in stages.values()]
    top = max(outs) or 1
    rows = []
    for (name, s), out in zip(stages.items(), outs):
        rejected = sum(s.get(k, 0) for k in _REJECT_KEYS if isinstance(s.get(k), int))
        reasons = s.get("failures_by_reason") or s.get("rejects_by_reason") or {}
        reason_text = ", ".join(f"{esc(r)} ({n})" for r, n in reasons.items()) if isinstance(reasons, dict) else ""
        tokens = (s.get("prompt_tokens") or 0) + (s.get("completion_tokens") or 0)
        cost = s.get("cost_usd")
        rows.append(
            f"<tr class=stage data-stage='{esc(name)}'><td>{esc(name)}</td><td class=num>{esc(s.get('inputs', '-'))}</td>"
            f"<td class=num>{esc(out)}</td><td><span class=bar style='width:{200 * out / top:.0f}px'></span></td>"
            f"<td class=num>{rejected}</td><td>{reason_text or '-'}</td><td class=num>{esc(s.get('llm_calls', '-'))}</td>"
            f"<td class=num>{tokens or '-'}</td><td class=num>{'-' if cost is None else f'{cost:.4f}'}</td>"
            f"<td class=num>{esc(s.get('elapsed_s', '-'))}</td></tr>")
    details = "".join(f"<details><summary>{esc(n)}: all numbers</summary>{_pre(s)}</details>" for n, s in stages.items())
    return ("<table id=funnel><tr><th>stage</th><th>inputs</th><th>outputs</th><th></th><th>rejected</th>"
            "<th>rejects by reason</th><th>LLM calls</th><th>tokens</th><th>cost (USD)</th><th>time (s)</th></tr>"
            + "".join(rows) + "</table>" + details)


# --- dataset and evaluation ------------------------------------------------------------------

def dataset_section(dataset_dir: str | Path) -> str:
    stats = _json(io.join(dataset_dir, "statistics.json"))
    if stats is None:
        return "<p class=muted>No dataset/ in this run (the dataset card is written after verification).</p>"
    ver = stats.get("verification", {})
    rows = "".join(
        f"<tr><td>{esc(c)}</td><td class=num>{v['passed']}</td><td class=num>{v['failed']}</td>"
        f"<td class=num>{v['not_run']}</td><td>{esc(', '.join(f'{r} ({n})' for r, n in v['reasons'].items()) or '-')}"
        f"</td></tr>" for c, v in ver.items() if isinstance(v, dict))
    cov = stats.get("coverage", {})
    cov_rows = "".join(f"<tr><td>{k}</td><td class=num>{cov[k]['available']}</td><td class=num>{cov[k]['called']}</td></tr>"
                       for k in ("tools", "categories", "apis") if k in cov)
    div = stats.get("diversity", {})
    plot_dir = io.join(dataset_dir, "plots")
    plots = _imgs(plot_dir, [e.name for e in io.list_files(plot_dir) if e.name.endswith(".png")])
    return (f"<p>{stats.get('verified', 0)} verified of {stats.get('episodes', 0)} episodes "
            f"(card: <code>{esc(io.join(dataset_dir, 'README.md'))}</code>).</p>"
            "<table id=verification><tr><th>check</th><th>passed</th><th>failed</th><th>not run</th>"
            f"<th>failures by reason</th></tr>{rows}</table>"
            f"<table><tr><th>coverage</th><th>available</th><th>called</th></tr>{cov_rows}</table>"
            f"<p>Instruction diversity: distinct-1 {esc(div.get('distinct_1'))}, distinct-2 "
            f"{esc(div.get('distinct_2'))}, embedding spread {esc((div.get('embedding_spread') or {}).get('value'))}."
            f"</p><div id=dataset-plots>{plots}</div>")


def _percent(row: dict[str, Any]) -> str:
    text = f"{100 * row['value']:.1f}"
    return text if row.get("std") is None else f"{text} ± {100 * row['std']:.1f}"


def evaluation_section(eval_dir: str | Path) -> str:
    summary = _json(io.join(eval_dir, "summary.json"))
    if summary is None:
        return "<p class=muted>No evaluation in this run.</p>"
    rows = "".join(
        f"<tr><td>{esc(r['metric'])}</td><td>{esc(r['method'])}</td><td>{esc(r.get('tools', 'oracle'))}</td>"
        f"<td>{esc(r['split'])}</td>"
        f"<td class=num>{r['queries']}</td><td class=num>{_percent(r)}</td></tr>" for r in summary.get("rows", []))
    plots = _imgs(eval_dir, list(summary.get("plots", [])))
    judges = ", ".join(summary.get("judges") or []) or "none"
    return (f"<p>{esc(summary.get('title', ''))}. Judge: {esc(judges)}.</p><table id=evaluation><tr><th>metric</th>"
            f"<th>method</th><th>tools</th><th>split</th><th>queries</th><th>value (%)</th></tr>{rows}</table>"
            f"<div id=evaluation-plots>{plots}</div>")


# --- episodes --------------------------------------------------------------------------------

def _call_text(message: dict[str, Any] | None) -> str:
    if not message:
        return ""
    parts = [str(message.get("content") or "")]
    for c in message.get("tool_calls") or []:
        fn = c.get("function") or {}
        parts.append(f"→ {fn.get('name', '')}({fn.get('arguments', '')})")
    return "\n".join(p for p in parts if p)


def _node_reply(node: dict[str, Any]) -> str:
    message = node.get("message") or {}
    if "node_type" in message:  # a ToolBench tree node (Thought / Action / Action Input)
        return f"{message['node_type']}: {message.get('description', '')}"
    return _call_text(message)


def _node_name(node: dict[str, Any]) -> str:
    if node.get("function"):
        return str(node["function"])
    message = node.get("message") or {}
    if "node_type" in message:
        return f"{message['node_type']} {str(message.get('description', ''))[:40]}".strip()
    return str(node.get("status") or "")


def tree_html(tree: list[dict[str, Any]], chosen: int | None = None) -> str:
    """Nested <details>, one per node: its request (what the parent's context ended with), its reply
    (the assistant turn) and the observation."""
    children: dict[Any, list[dict[str, Any]]] = {}
    for node in tree:
        children.setdefault(node.get("parent"), []).append(node)

    def render(node: dict[str, Any]) -> str:
        parent = next((n for n in tree if n.get("id") == node.get("parent")), None)
        request = (parent or {}).get("observation") or "(the instruction)"
        status = node.get("status") or ""
        cls = "ok" if status in ("ok", "finish_answer", "root", "") else "bad"
        mark = " ★ chosen" if node.get("id") == chosen else ""
        label = f"node {node.get('id')} · {esc(_node_name(node))} · <span class={cls}>{esc(status or '-')}</span>"
        body = ("" if node.get("parent") is None else
                f"<div class=node-request><b>request</b> (context ends with){_pre(request)}</div>"
                f"<div class=node-reply><b>reply</b>{_pre(_node_reply(node))}</div>"
                f"<div class=node-observation><b>observation</b>{_pre(node.get('observation') or '')}</div>")
        kids = "".join(render(c) for c in children.get(node.get("id"), []))
        return f"<details class=tree-node data-node='{node.get('id')}'><summary>{label}{mark}</summary>{body}{kids}</details>"

    return "".join(render(root) for root in children.get(None, []))


def turns_html(messages: list[dict[str, Any]]) -> str:
    items = []
    for m in messages:
        role = m.get("role", "")
        text = _call_text(m) if role == "assistant" else str(m.get("content") or "")
        items.append(f"<li class=turn><span class=role>{esc(role)}</span>{_pre(text)}</li>")
    return f"<ol class=turns>{''.join(items)}</ol>"


def episode_html(ep: Episode) -> str:
    verified = getattr(ep, "verified", None)
    badge = "" if verified is None else (" · <span class=ok>verified</span>" if verified else
                                         " · <span class=bad>not verified</span>")
    reasons = [f"{c}: {getattr(ep, f'{c}_reason')}" for c in ("format", "execution", "semantic")
               if getattr(ep, f"{c}_reason", "")]
    parts = [f"<p><b>query</b>: {esc(ep.query)}</p><p><b>final answer</b>: {esc(ep.final_answer or '-')}</p>"]
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    if ep.tree:
        parts.append("<h4>search tree</h4>" + tree_html(ep.tree, ep.extra.get("chosen_node")))
    parts.append("<details class=conversation><summary>conversation, turn by turn</summary>"
                 + turns_html(ep.messages) + "</details>")
    return (f"<details class=episode data-episode='{esc(ep.id)}'><summary>{esc(ep.id)} · {esc(ep.method)} · "
            f"{esc(ep.status)}{badge}</summary>{''.join(parts)}</details>")


def sample_episodes(run_dir: str | Path, limit: int) -> list[Episode]:
    """Verified episodes when the run has them (with their verdicts), else the plain episodes; a
    few of each method."""
    for name, cls in (("verified_episodes", VerifiedEpisode), ("episodes", Episode)):
        if io.part_files(io.join(run_dir, name)):
            episodes, _ = io.read_records(io.join(run_dir, name), cls)
            by_method: dict[str, list[Episode]] = {}
            for ep in episodes:
                by_method.setdefault(ep.method, []).append(ep)
            picked = [ep for eps in by_method.values() for ep in eps[: max(1, limit // len(by_method))]]
            return picked[:limit]
    return []


def render_front_page(title: str, run_dir: str | Path, episodes: list[Episode],
                      eval_dir: str | Path | None = None) -> str:
    """The page of `run_dir` (a local path or a URI); `eval_dir`: where the evaluation's summary.json
    and PNGs are (default `<run_dir>/report`; the report passes the dir it is being written in)."""
    eval_dir = io.join(run_dir, "report") if eval_dir is None else eval_dir
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            f"<p class=muted>Run directory: <code>{esc(io.location(run_dir))}</code></p>"
            f"<h2 id=chain>The chain</h2>{funnel(stage_summaries(run_dir))}"
            f"<h2 id=dataset>Dataset</h2>{dataset_section(io.join(run_dir, 'dataset'))}"
            f"<h2 id=eval>Evaluation</h2>{evaluation_section(eval_dir)}"
            f"<h2 id=samples>Sample episodes</h2>"
            + ("".join(episode_html(ep) for ep in episodes) or "<p class=muted>No episodes.</p>")
            + "</body></html>\n")


def write_front_page(run_dir: str | Path, out: str | Path | None = None, *, title: str | None = None,
                     samples: int = 6, eval_dir: str | Path | None = None) -> str | Path:
    """Write RUN_DIR/report/report.html (or `out`; either may be in an object store) from whatever
    the run directory holds; returns where it was written."""
    path = out if out is not None else io.join(run_dir, "report", "report.html")
    name = io.location(run_dir).rstrip("/").rpartition("/")[2]
    page = render_front_page(title or f"toolweave run: {name}", run_dir, sample_episodes(run_dir, samples), eval_dir)
    io.write_text(path, secrets.redact(page))  # samples and notes may quote what a tool echoed
    return path if io.is_remote(path) else Path(path)
