"""`retriever.test_ids`: the held-out queries are exactly the ids a file names (a JSON list, or
ToolBench's data/test_query_ids/*.json, an object keyed by the ids), matched by a query's id or by its
query file's query_id; an id no query has stops with one line naming the file and the ids."""
import json
from pathlib import Path

import pytest

from toolweave.retrieval.corpus import (load_query_files, queries_from_instructions, read_test_ids, split_by_ids,
                                        split_queries)
from toolweave.schemas import FunctionRef, Instruction

G1 = Path(__file__).parents[2] / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


@pytest.fixture(scope="module")
def g1_queries():
    return load_query_files([G1])[1]


def test_toolbench_id_file_holds_out_exactly_its_ids(tmp_path, g1_queries):
    # ToolBench's file: {"<query_id>": ...}; its preprocess keeps the keys as the test set
    ids = ["588", "1073", "1856"]
    f = tmp_path / "G1_instruction_test_query_ids.json"
    f.write_text(json.dumps({i: 1 for i in ids}))
    assert read_test_ids(f) == ids
    train, test = split_by_ids(g1_queries, read_test_ids(f), f)
    assert sorted(q.id for q in test) == sorted(ids)
    assert len(train) == len(g1_queries) - 3 and not {q.id for q in train} & set(ids)
    # the seeded split would hold out others: the file, not the fraction, decides
    _, random_test = split_queries(g1_queries, 3 / len(g1_queries), 0)
    assert {q.id for q in random_test} != set(ids)


def test_a_json_list_of_ints_or_strings_works_too(tmp_path, g1_queries):
    f = tmp_path / "ids.json"
    f.write_text(json.dumps([588, "608"]))
    _, test = split_by_ids(g1_queries, read_test_ids(f), f)
    assert sorted(q.id for q in test) == ["588", "608"]


def test_unknown_ids_are_one_line_naming_the_file_and_the_ids(tmp_path, g1_queries):
    f = tmp_path / "ids.json"
    f.write_text(json.dumps(["588", "nope-1", "999999"]))
    with pytest.raises(ValueError) as e:
        split_by_ids(g1_queries, read_test_ids(f), f)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "2 id(s) match no query: nope-1, 999999" in msg


@pytest.mark.parametrize("content, why", [("{not json", "cannot be read as JSON"), ("[]", "non-empty"),
                                          ('{"a": [1]}', None), ("[[1]]", "non-empty JSON list")])
def test_bad_id_files_name_the_file(tmp_path, content, why):
    f = tmp_path / "ids.json"
    f.write_text(content)
    if why is None:
        assert read_test_ids(f) == ["a"]
        return
    with pytest.raises(ValueError, match=why) as e:
        read_test_ids(f)
    assert str(f) in str(e.value)


def test_holding_out_every_query_is_an_error(g1_queries):
    with pytest.raises(ValueError, match="none left to train on"):
        split_by_ids(g1_queries[:2], [q.id for q in g1_queries[:2]], "ids.json")


def test_imported_instructions_match_by_their_query_files_query_id():
    """An instruction imported from a ToolBench query file keeps its `query_id`: ToolBench's ids hold it out."""
    ref = [FunctionRef(tool="t", function="f")]
    instrs = [Instruction(id=f"I1-{n}", text=f"q{n}", relevant_functions=ref, extra={"query_id": qid})
              for n, qid in enumerate([10, 11, None])]
    queries = queries_from_instructions(instrs)
    assert [q.source_id for q in queries] == ["10", "11", ""]
    train, test = split_by_ids(queries, ["11", "I1-2"], "ids.json")
    assert [q.id for q in test] == ["I1-1", "I1-2"] and [q.id for q in train] == ["I1-0"]
