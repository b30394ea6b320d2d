"""`toolweave plan CONFIG`: what a run places where, per node kind of its cluster file, and its cost
on paper (tokens, replica-hours, GPU-hours) for the configured counts: from the run dir's own stage
summaries where it has them, else from published figures, named as such in the output."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from toolweave.config import RunConfig
from toolweave.placement import NodeKind, Resources, find_cluster_file, node_kinds, per_node, replica_bundles
from toolweave.stages.registry import places

# Published per-replica throughput, tokens/s, by model size and GPU. vLLM's nightly performance-benchmark
# (Buildkite builds 9523 and 9515; ShareGPT, 200 prompts, maximum throughput): Llama-3 70B TP 4 4.79 req/s on
# 4 x A100-80GB, 9.84 on 4 x H200; Llama-3.1 8B TP 1 11.06 req/s on A100-80GB, 22.57 on H200; times ShareGPT's
# mean request, 161 prompt + 338 output tokens (the vLLM paper's Fig. 11). docs/benchmarks.md, Capacity on paper.
PUBLISHED_TOKENS_PER_S = {("70B", "A100-80GB"): 2390, ("70B", "H200"): 4910,
                          ("8B", "A100-80GB"): 5520, ("8B", "H200"): 11270}
# Tokens and LLM calls per ToolBench DFSDT instance: the mean of the 15 ChatGPT answers ToolBench ships
# (tests/data/toolbench/data_example/answer/, answer_generation.total_tokens and query_count); the solver only.
TOOLBENCH_TOKENS_PER_INSTANCE = 48_470
TOOLBENCH_CALLS_PER_INSTANCE = 23.2
EPISODE_STAGES = ("solve", "simulate")


def billions(model: str) -> float | None:
    found = re.search(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])", model)
    return float(found.group(1)) if found else None


def size_class(*names: str) -> str | None:
    """The published table's row for the first name that says a size (`...-70B-...`, `qwen2.5-72b`), or None."""
    size = next((b for b in map(billions, names) if b is not None), None)
    if size is None:
        return None
    return "70B" if 60 <= size <= 80 else "8B" if 6 <= size <= 9 else None


@dataclass(frozen=True)
class Work:
    what: str
    per_unit: Resources  # on one node
    low: int
    high: int
    detail: str = ""


def work(cfg: RunConfig) -> list[Work]:
    """What the config places: what its stages declare (as `toolweave check` derives it), and the
    Serve replicas."""
    placed = places(cfg)
    out = []
    if "episode_actors" in placed:
        out.append(Work("episode actors", {"CPU": cfg.ray.actor_num_cpus, **cfg.ray.actor_resources},
                        cfg.ray.min_actors, cfg.ray.max_actors))
    if cfg.llm.engine == "serve":
        for d in cfg.llm.deployments:
            bundles = replica_bundles(d)
            total: Resources = {}
            for b in bundles:
                for k, v in b.items():
                    total[k] = total.get(k, 0.0) + v
            shown = " + ".join(_show(b) for b in bundles)
            out.append(Work(f"{d.model_id} replicas (TP {d.tensor_parallel_size})", total, d.min_replicas,
                            d.max_replicas, f"bundles {shown}"))
    if "train_workers" in placed:
        t = cfg.train
        out.append(Work("train workers", {"CPU": t.num_cpus_per_worker, **({"GPU": 1.0} if t.use_gpu else {}),
                                          **t.resources_per_worker}, t.num_workers, t.num_workers))
    return out


def _show(r: Resources) -> str:
    return "{" + ", ".join(f"{k} {v:g}" for k, v in r.items() if v) + "}"


def home(w: Work, kinds: list[NodeKind]) -> NodeKind | None:
    """The smallest worker kind that holds one unit (fewest GPUs, then CPUs)."""
    fitting = [k for k in kinds if per_node(w.per_unit, k.resources) > 0]
    return min(fitting, key=lambda k: (k.resources.get("GPU", 0), k.resources.get("CPU", 0)), default=None)


def placement_lines(cfg: RunConfig, kinds: list[NodeKind], source: str) -> list[str]:
    lines = [f"placement on {source} (each piece on the smallest worker kind that holds it):"]
    for w in work(cfg):
        kind = home(w, kinds)
        counts = f"{w.low}" if w.low == w.high else f"{w.low}-{w.high}"
        if kind is None:
            lines.append(f"  {w.what} x {counts} {_show(w.per_unit)}: no worker kind holds one")
            continue
        each = per_node(w.per_unit, kind.resources)
        nodes = [math.ceil(n / each) for n in (w.low, w.high)]
        node_counts = f"{nodes[0]}" if nodes[0] == nodes[1] else f"{nodes[0]}-{nodes[1]}"
        gpus = kind.resources.get("GPU", 0)
        gpu_counts = sorted({nodes[0] * gpus, nodes[1] * gpus})
        gpu_text = f", {'-'.join(f'{g:g}' for g in gpu_counts)} GPUs" if gpus else ""
        lines.append(f"  {w.what} x {counts} {_show(w.per_unit)} -> {kind.name} {_show(kind.resources)}, "
                     f"{min(each, 10**6)} a node: {node_counts} nodes{gpu_text}"
                     + (f" (max_workers {kind.max_workers})" if nodes[1] > kind.max_workers else "")
                     + (f"; {w.detail}" if w.detail else ""))
    return lines


def instances(cfg: RunConfig, stage: str) -> tuple[int | None, str]:
    """How many episodes the configured run makes, and how that was counted."""
    n: int | None = None
    how = ""
    ins = cfg.instructions
    if stage == "solve" and ins.style == "toolbench" and not ins.import_queries:
        n = len(ins.modes) * ins.samples_per_mode * ins.per_sample
        how = (f"instructions.modes {len(ins.modes)} x samples_per_mode {ins.samples_per_mode} x per_sample "
               f"{ins.per_sample}")
    elif ins.style == "toolalpaca" and cfg.toolsets.catalogue:
        try:
            data = json.loads(Path(cfg.toolsets.catalogue).read_text())
            tools = len(data["entries"] if isinstance(data, dict) and "entries" in data else data)
            tools = min(tools, cfg.toolsets.catalogue_limit or tools)
            n, how = tools * ins.per_tool, f"{tools} catalogue entries x instructions.per_tool {ins.per_tool}"
        except (OSError, ValueError, TypeError):
            pass
    if n is not None and cfg.run.limit:
        n, how = min(n, cfg.run.limit), f"{how}, run.limit {cfg.run.limit}"
    return n, how


def run_figures(cfg: RunConfig, stage: str) -> dict | None:
    """Per-episode tokens, calls and wall seconds from the run dir's stage summary, if it has episodes."""
    path = cfg.path(f"{stage}_summary.json")
    try:
        s = json.loads(path.read_text())
        done = int(s["processed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if done <= 0:
        return None
    return {"tokens": (s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)) / done,
            "calls": s.get("llm_calls", 0) / done, "wall_s": s.get("elapsed_s", 0.0) / done,
            "source": f"{path} ({done} episodes)"}


def cost_lines(cfg: RunConfig) -> list[str]:
    stages = set(cfg.stages) or {"solve"}
    stage = next((s for s in EPISODE_STAGES if s in stages), None)
    if stage is None:
        return ["cost on paper: no episode stage (solve, simulate) in this config"]
    count, how = instances(cfg, stage)
    figures = run_figures(cfg, stage)
    if figures is None and stage == "solve":
        figures = {"tokens": TOOLBENCH_TOKENS_PER_INSTANCE, "calls": TOOLBENCH_CALLS_PER_INSTANCE, "wall_s": None,
                   "source": "published: ToolBench's 15 ChatGPT DFSDT answers (data_example), solver only"}
    lines = [f"cost on paper ({stage}):"]
    if count is None:
        lines.append("  episodes: not countable from the config (imported queries, no catalogue): "
                     "set run.limit or run a few and plan again with the run dir")
        return lines
    lines.append(f"  episodes: {count:,} ({how})")
    if figures is None:
        lines.append(f"  tokens: no published per-episode figure for {stage}; run it with run.limit=50 and plan "
                     "again: the run dir's summary gives them")
        return lines
    tokens = count * figures["tokens"]
    lines.append(f"  per episode: {figures['tokens']:,.0f} tokens, {figures['calls']:.1f} LLM calls "
                 f"[{figures['source']}]")
    lines.append(f"  tokens: {tokens / 1e9:.3g} B")
    model = cfg.llm.endpoint("assistant").model
    deployment = next((d for d in cfg.llm.deployments if d.model_id == model), None)
    tp = deployment.tensor_parallel_size * (deployment.gpus_per_worker or 1) if deployment else 1
    size = size_class(*([deployment.model_source] if deployment else []), model)  # the weights' name first
    if size is None:
        lines.append(f"  replica-hours: model {model} is of no size the published table has (8B, 70B)")
        return lines
    lines.append("  replica- and GPU-hours from the published table's GPUs (the cluster's own may differ):")
    for (row, gpu), per_s in PUBLISHED_TOKENS_PER_S.items():
        if row != size:
            continue
        replica_h = tokens / per_s / 3600
        wall = ""
        if deployment:
            wall = (f", wall {replica_h / deployment.max_replicas:,.1f} h at max_replicas {deployment.max_replicas}"
                    f" - {replica_h / max(deployment.min_replicas, 1):,.1f} h at min_replicas "
                    f"{max(deployment.min_replicas, 1)}")
        lines.append(f"  {model} ({size} TP {tp:g}) on {gpu}: {replica_h:,.0f} replica-h, {replica_h * tp:,.0f} GPU-h"
                     f"{wall} [published: vLLM nightly benchmark, {per_s:,} tok/s a replica]")
    if figures.get("wall_s"):
        lines.append(f"  measured wall time: {figures['wall_s']:.1f} s an episode at the run's concurrency")
    if cfg.executor.kind == "llm" and "published" in figures["source"]:
        lines.append("  the simulated API's calls (executor role) are not in the published figure: one per tool call")
    return lines


def plan_lines(cfg: RunConfig, config_path: str | Path | None = None) -> list[str]:
    if cfg.ray.cluster:
        cluster = find_cluster_file(cfg.ray.cluster, config_path)
        kinds, head = node_kinds(cluster)
        kinds, source = [k for k in kinds if k.name != head], str(cluster)
    else:
        from toolweave.checks import local_node
        kinds, source = [NodeKind("local", local_node(cfg), 1)], "this machine's local Ray instance"
    return [*placement_lines(cfg, kinds, source), *cost_lines(cfg)]
