"""NDCG@k with binary relevance, as ToolBench's `APIEvaluator` (sklearn `ndcg_score` on 0/1 labels)."""
from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Sequence
from typing import Any


def ndcg_at_k(ranked: Sequence[Hashable], relevant: set | frozenset, k: int) -> float:
    """DCG of the top k over the DCG of a perfect ranking (all relevant first). 0 when nothing is relevant."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, key in enumerate(ranked[:k]) if key in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def mean_ndcg(ranker: Any, queries, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """`ranker.top_k_many(texts, k)` -> per text (tool, function, score) best first; `queries` have `.text`
    and `.relevant` ((tool, function) keys). {"ndcg@1": ..., ...}. All queries in one call: a dense
    ranker encodes them in batches (one by one, encoding dominated a retriever stage's time)."""
    top = max(ks)
    ranked = [[(t, f) for t, f, _ in hits] for hits in ranker.top_k_many([q.text for q in queries], top)]
    return {f"ndcg@{k}": statistics.fmean(ndcg_at_k(r, q.relevant, k) for r, q in zip(ranked, queries))
            if queries else 0.0 for k in ks}
