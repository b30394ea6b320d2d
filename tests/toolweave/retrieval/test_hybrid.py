import pytest

from toolweave.retrieval.hybrid import HybridRetriever


class Fixed:
    def __init__(self, keys):
        self.keys = keys

    def top_k(self, query, k=5):
        return [(t, f, 1.0) for t, f in self.keys[:k]]

    def top_k_many(self, queries, k=5):
        return [self.top_k(q, k) for q in queries]


def test_reciprocal_rank_fusion_prefers_apis_both_rank_well():
    lexical = Fixed([("a", "1"), ("b", "1"), ("c", "1")])
    dense = Fixed([("c", "1"), ("b", "1"), ("d", "1")])
    hybrid = HybridRetriever(lexical, dense, rrf_k=60)
    assert hybrid.rank("q", 4) == [("c", "1"), ("b", "1"), ("a", "1"), ("d", "1")]  # 1/61+1/63 > 2/62
    top = hybrid.top_k("q", 1)[0]
    assert abs(top[2] - (1 / 61 + 1 / 63)) < 1e-12


def test_load_ranker_serves_the_saved_retriever_dense_or_fused_with_bm25(monkeypatch):
    from toolweave.retrieval import dense, hybrid
    from toolweave.retrieval.bm25 import BM25Retriever
    from toolweave.retrieval.corpus import ApiDoc

    docs = [ApiDoc("weather", "now", "weather now temperature"), ApiDoc("music", "lyrics", "song lyrics words")]

    class Saved(Fixed):
        def __init__(self):
            super().__init__([("music", "lyrics"), ("weather", "now")])
            self.docs = docs

    monkeypatch.setattr(dense.Retriever, "load", classmethod(lambda cls, d: Saved()))
    assert isinstance(hybrid.load_ranker("dir", "dense"), Saved)
    served = hybrid.load_ranker("dir", "hybrid")
    assert isinstance(served, HybridRetriever) and isinstance(served.rankers[0], BM25Retriever)
    assert served.rankers[0].docs == docs  # BM25 over the retriever's own corpus
    assert served.rank("weather temperature now", 2)[0] == ("weather", "now")  # BM25's first, dense's second
    with pytest.raises(ValueError, match="retriever.ranking 'sparse'"):
        hybrid.load_ranker("dir", "sparse")
