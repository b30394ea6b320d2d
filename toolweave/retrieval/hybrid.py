"""Hybrid ranking: BM25 and the dense retriever fused by reciprocal rank (RRF, Cormack et al. 2009):
score(d) = sum over the two rankings of 1 / (k + rank), each ranking cut at `depth`."""
from __future__ import annotations

from typing import Protocol

from pathlib import Path

from toolweave.retrieval.corpus import Key

RRF_K = 60  # the paper's constant: dampens the weight of the very top ranks
DEPTH = 100  # how deep each ranking is read before fusing


class Ranker(Protocol):
    def top_k(self, query: str, k: int = 5) -> list[tuple[str, str, float]]: ...

    def top_k_many(self, queries: list[str], k: int = 5) -> list[list[tuple[str, str, float]]]: ...


class HybridRetriever:
    def __init__(self, lexical: Ranker, dense: Ranker, *, rrf_k: int = RRF_K, depth: int = DEPTH):
        self.rankers, self.rrf_k, self.depth = (lexical, dense), rrf_k, depth

    def top_k(self, query: str, k: int = 5) -> list[tuple[str, str, float]]:
        return self._fuse([r.top_k(query, max(k, self.depth)) for r in self.rankers], k)

    def top_k_many(self, queries: list[str], k: int = 5) -> list[list[tuple[str, str, float]]]:
        # each ranker ranks all queries at once (the encoder encodes them in batches, not one by one)
        lexical, dense = (r.top_k_many(queries, max(k, self.depth)) for r in self.rankers)
        return [self._fuse(rankings, k) for rankings in zip(lexical, dense)]

    def _fuse(self, rankings, k: int) -> list[tuple[str, str, float]]:
        fused: dict[Key, float] = {}
        for ranking in rankings:
            for rank, (tool, fn, _) in enumerate(ranking, start=1):
                fused[(tool, fn)] = fused.get((tool, fn), 0.0) + 1.0 / (self.rrf_k + rank)
        best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]  # stable: ties keep BM25's order
        return [(tool, fn, score) for (tool, fn), score in best]

    def rank(self, query: str, k: int) -> list[Key]:
        return [(t, f) for t, f, _ in self.top_k(query, k)]


def load_ranker(directory: str | Path, ranking: str = "dense") -> Ranker:
    """A trained retriever directory as `retriever.ranking` serves it: `dense` (the encoder) or
    `hybrid` (BM25 over the same corpus fused with it)."""
    from toolweave.retrieval.bm25 import BM25Retriever
    from toolweave.retrieval.dense import Retriever
    dense = Retriever.load(directory)
    if ranking == "dense":
        return dense
    if ranking == "hybrid":
        return HybridRetriever(BM25Retriever(dense.docs), dense)
    raise ValueError(f"retriever.ranking {ranking!r}: expected 'dense' or 'hybrid'")
