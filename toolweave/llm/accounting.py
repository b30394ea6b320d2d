"""Token, call and cost accounting of LLM calls, per stage, per episode and per model.

One Accountant is shared by all clients of a run (clients_for builds it). Updates take a
threading lock and never await, so it is safe from many coroutines and from several threads.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from toolweave.llm.types import CallTag, Usage


def _copy(u: Usage) -> Usage:
    return Usage(u.prompt_tokens, u.completion_tokens, u.calls)


class Accountant:
    def __init__(self, prices: dict[str, dict[str, float]] | None = None):
        # model -> {"prompt": USD per 1M tokens, "completion": USD per 1M tokens}
        self.prices = dict(prices or {})
        self._lock = threading.Lock()
        self._total = Usage()
        self._by_stage: dict[str, Usage] = defaultdict(Usage)
        self._by_model: dict[str, Usage] = defaultdict(Usage)
        self._by_role: dict[str, Usage] = defaultdict(Usage)
        self._by_episode: dict[str, Usage] = defaultdict(Usage)
        self._failures: dict[str, int] = defaultdict(int)  # model -> calls that failed after retries
        self._retries = 0
        self._latency_s = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def record(self, usage: Usage, *, model: str, tag: CallTag | None = None, latency_s: float = 0.0,
               retries: int = 0) -> None:
        tag = tag or CallTag()
        with self._lock:
            for bucket in (self._total, self._by_model[model], self._by_stage[tag.stage or "-"],
                           self._by_role[tag.role or "default"]):
                bucket.add(usage)
            if tag.episode:
                self._by_episode[tag.episode].add(usage)
            self._latency_s += latency_s
            self._retries += retries

    def record_failure(self, *, model: str, tag: CallTag | None = None, retries: int = 0) -> None:
        with self._lock:
            self._failures[model] += 1
            self._retries += retries

    def episode_usage(self, episode_id: str) -> Usage:
        with self._lock:
            return _copy(self._by_episode.get(episode_id, Usage()))

    def pop_episode(self, episode_id: str) -> Usage:
        """The episode's usage, forgotten afterwards (long runs keep memory flat)."""
        with self._lock:
            return self._by_episode.pop(episode_id, None) or Usage()

    @property
    def total(self) -> Usage:
        with self._lock:
            return _copy(self._total)

    def cost(self, model: str, usage: Usage) -> float | None:
        price = self.prices.get(model)
        if price is None:
            return None
        return (usage.prompt_tokens * price.get("prompt", 0.0)
                + usage.completion_tokens * price.get("completion", 0.0)) / 1e6

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict: totals, per stage / role / model (with cost where priced)."""
        def row(u: Usage, cost: float | None = None) -> dict[str, Any]:
            d = {"calls": u.calls, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                 "total_tokens": u.prompt_tokens + u.completion_tokens}
            if cost is not None:
                d["cost_usd"] = round(cost, 6)
            return d

        with self._lock:
            by_model = {m: row(u, self.cost(m, u)) for m, u in sorted(self._by_model.items())}
            costs = [v["cost_usd"] for v in by_model.values() if "cost_usd" in v]
            return {
                "total": row(self._total, sum(costs) if costs else None),
                "by_stage": {s: row(u) for s, u in sorted(self._by_stage.items())},
                "by_role": {r: row(u) for r, u in sorted(self._by_role.items())},
                "by_model": by_model,
                "episodes": len(self._by_episode),
                "failed_calls": dict(self._failures),
                "retries": self._retries,
                "mean_latency_s": round(self._latency_s / self._total.calls, 4) if self._total.calls else 0.0,
            }

    def print_table(self, console=None) -> None:
        """A rich table of the summary (per model and per stage). Names come from configs and
        records: shown escaped (printable) and as plain text, not rich markup."""
        from rich.table import Table
        from rich.text import Text

        from toolweave.printable import SafeConsole, printable

        s = self.summary()
        table = Table(title="LLM usage")
        for col in ("group", "name", "calls", "prompt tok", "completion tok", "cost USD"):
            table.add_column(col, justify="right" if col not in ("group", "name") else "left")
        for group in ("by_model", "by_stage", "by_role"):
            for name, r in s[group].items():
                cost = r.get("cost_usd")
                table.add_row(group[3:], Text(printable(name)), str(r["calls"]), str(r["prompt_tokens"]),
                              str(r["completion_tokens"]), "" if cost is None else f"{cost:.4f}")
        t = s["total"]
        table.add_row("total", "", str(t["calls"]), str(t["prompt_tokens"]), str(t["completion_tokens"]),
                      "" if t.get("cost_usd") is None else f"{t['cost_usd']:.4f}")
        (console or SafeConsole()).print(table)
