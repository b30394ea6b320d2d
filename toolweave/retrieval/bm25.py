"""The lexical baseline: Okapi BM25 (rank-bm25) over the same API documents."""
from __future__ import annotations

import re

import numpy as np
from rank_bm25 import BM25Okapi

from toolweave.retrieval.corpus import ApiDoc, Key

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class BM25Retriever:
    def __init__(self, docs: list[ApiDoc]):
        if not docs:
            raise ValueError("BM25 needs at least one document")
        self.docs = docs
        self.index = BM25Okapi([tokenize(d.text) for d in docs])

    def top_k(self, query: str, k: int = 5) -> list[tuple[str, str, float]]:
        scores = self.index.get_scores(tokenize(query))
        best = np.argsort(-scores, kind="stable")[:k]
        return [(self.docs[i].tool, self.docs[i].function, float(scores[i])) for i in best]

    def top_k_many(self, queries: list[str], k: int = 5) -> list[list[tuple[str, str, float]]]:
        return [self.top_k(q, k) for q in queries]

    def rank(self, query: str, k: int) -> list[Key]:
        return [(t, f) for t, f, _ in self.top_k(query, k)]
