"""NDCG@k with binary relevance, as ToolBench's `APIEvaluator` (sklearn `ndcg_score` on 0/1 labels)."""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence


def ndcg_at_k(ranked: Sequence[Hashable], relevant: set | frozenset, k: int) -> float:
    """DCG of the top k over the DCG of a perfect ranking (all relevant first). 0 when nothing is relevant."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, key in enumerate(ranked[:k]) if key in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def mean_ndcg(rank: Callable[[str, int], Sequence[Hashable]], queries, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """`rank(text, k)` -> keys best first; `queries` have `.text` and `.relevant`. {"ndcg@1": ..., ...}."""
    top = max(ks)
    ranked = [list(rank(q.text, top)) for q in queries]
    return {f"ndcg@{k}": statistics.fmean(ndcg_at_k(r, q.relevant, k) for r, q in zip(ranked, queries))
            if queries else 0.0 for k in ks}
