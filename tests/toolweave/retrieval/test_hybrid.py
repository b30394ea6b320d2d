from toolweave.retrieval.hybrid import HybridRetriever


class Fixed:
    def __init__(self, keys):
        self.keys = keys

    def top_k(self, query, k=5):
        return [(t, f, 1.0) for t, f in self.keys[:k]]


def test_reciprocal_rank_fusion_prefers_apis_both_rank_well():
    lexical = Fixed([("a", "1"), ("b", "1"), ("c", "1")])
    dense = Fixed([("c", "1"), ("b", "1"), ("d", "1")])
    hybrid = HybridRetriever(lexical, dense, rrf_k=60)
    assert hybrid.rank("q", 4) == [("c", "1"), ("b", "1"), ("a", "1"), ("d", "1")]  # 1/61+1/63 > 2/62
    top = hybrid.top_k("q", 1)[0]
    assert abs(top[2] - (1 / 61 + 1 / 63)) < 1e-12
