import math
from pathlib import Path

import pytest

from toolweave.retrieval.bm25 import BM25Retriever
from toolweave.retrieval.corpus import document_text, load_query_files, split_queries
from toolweave.retrieval.metrics import mean_ndcg, ndcg_at_k
from toolweave.toolsets.naming import tool_id

G1 = Path(__file__).parents[2] / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


@pytest.fixture(scope="module")
def g1():
    return load_query_files([G1])


def test_document_text_is_toolbench_layout():
    entry = {"category_name": "Data", "tool_name": "TheClique", "api_name": "Songkick concert",
             "api_description": "Concert info", "required_parameters": [{"name": "id_conc", "type": "STRING"}],
             "optional_parameters": [], "template_response": {"date": "str"}}
    assert document_text(entry) == ('Data, TheClique, Songkick concert, Concert info, required_params: '
                                     '[{"name": "id_conc", "type": "STRING"}], optional_params: [], '
                                     'return_schema: {"date": "str"}')
    assert document_text({"api_name": "x"}).endswith('optional_params: "", return_schema: ""')


def test_stabletoolbench_queries_and_corpus(g1):
    docs, queries, rejects = g1
    assert rejects == []
    assert len(queries) == 163 and len(docs) == len({d.key for d in docs}) == 820
    keys = {d.key for d in docs}
    assert all(q.relevant <= keys for q in queries)  # every relevant API has a document
    q588 = next(q for q in queries if q.id == "588")
    assert q588.relevant == {(tool_id("TheClique"), "Transfermarkt search"),
                             (tool_id("TheClique"), "Transfermarkt details")}
    doc = next(d for d in docs if d.key == (tool_id("TheClique"), "Transfermarkt search"))
    assert doc.text.startswith("Data, TheClique, Transfermarkt search, ")


def test_split_is_seeded_disjoint_and_by_query(g1):
    _, queries, _ = g1
    tr, te = split_queries(queries, 0.2, seed=0)
    tr2, te2 = split_queries(list(reversed(queries)), 0.2, seed=0)
    assert [q.id for q in te] == [q.id for q in te2]  # input order does not matter, the seed does
    assert len(te) == 33 and not {q.id for q in tr} & {q.id for q in te}
    assert [q.id for q in split_queries(queries, 0.2, seed=1)[1]] != [q.id for q in te]


def test_ndcg_binary_relevance():
    rel = {"a", "b"}
    assert ndcg_at_k(["a", "b", "c"], rel, 3) == 1.0
    assert ndcg_at_k(["c", "a"], rel, 1) == 0.0
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(["c", "a", "b"], rel, 3) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert ndcg_at_k(["a"], {"a"}, 5) == 1.0  # ideal counts min(k, |relevant|) hits
    assert ndcg_at_k(["a"], set(), 5) == 0.0


def test_bm25_baseline_on_held_out_queries(g1):
    docs, queries, _ = g1
    _, test = split_queries(queries, 0.2, 0)
    bm25 = BM25Retriever(docs)
    top = bm25.top_k(test[0].text, 5)
    assert len(top) == 5 and all(isinstance(t, str) and isinstance(f, str) for t, f, _ in top)
    assert [s for *_, s in top] == sorted((s for *_, s in top), reverse=True)
    scores = mean_ndcg(bm25, test)
    assert set(scores) == {"ndcg@1", "ndcg@3", "ndcg@5"}
    assert 0.5 < scores["ndcg@5"] <= 1.0  # lexical overlap is strong on these queries


def test_bad_query_file_is_rejected_not_fatal(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "queries"}')
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    docs, queries, rejects = load_query_files([bad, broken, G1])
    assert len(queries) == 163 and len(rejects) == 2
    assert "not a ToolBench query file" in rejects[0].reason and "invalid JSON" in rejects[1].reason
