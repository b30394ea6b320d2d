"""ToolEval's own reading of answers, recorded from its code (tests/data/reference/SOURCES.md,
`tooleval_reading_golden.json.gz`): convert_to_answer_format.py on ToolBench's 15 shipped raw answers
and StableToolBench's 6, and eval_pass_rate.py's hallucination rewrite, get_steps and Finish test on
ToolBench's published converted answers (string tool messages) and StableToolBench's (dict ones)."""
import copy
import gzip
import json
from functools import cache
from pathlib import Path

import pytest

from toolweave.converters.tooleval import convert_answer, ends_with_finish, get_steps, has_no_hallucination
from toolweave.schemas import RecordError

DATA = Path(__file__).parents[2] / "data"
REF = DATA / "reference" / "toolbench"
ANSWER_DIRS = {"toolbench": DATA / "toolbench" / "data_example" / "answer",
               "stabletoolbench": DATA / "stabletoolbench" / "data_example" / "answer"}


@cache
def golden() -> dict:
    with gzip.open(REF / "tooleval_reading_golden.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


@cache
def evalset_sample() -> dict:
    with gzip.open(REF / "default_evalset_sample.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def raw_answer_path(key: str) -> Path:
    source, group, name = key.split("/")
    base = ANSWER_DIRS[source] / group
    return base / name if source == "toolbench" else base / "G1_instruction" / name


def converted_entries(key: str) -> dict:
    source, rest = key.split("/", 1)
    if source == "toolbench":
        return evalset_sample()[rest]
    return json.loads((DATA / "stabletoolbench" / "data_example" / "model_predictions_converted" / rest).read_text())


def test_convert_matches_reference_on_every_shipped_raw_answer():
    cases = golden()["convert"]
    assert sum(k.startswith("toolbench/") for k in cases) == 15 and len(cases) == 21
    invalid = []
    for key, expected in cases.items():
        data = json.loads(raw_answer_path(key).read_text(encoding="utf-8"))
        if not data["answer_generation"]["valid_data"]:
            invalid.append(key.rsplit("/", 1)[1])
        mine = convert_answer(data, expected["answer"]["method"], where=key)
        assert json.dumps(mine) == json.dumps(expected), key  # key order too: str(dict) shows it to the judge
    # ToolBench's 69 and 8: a random walk of the explored tree; StableToolBench's CoT 588: a random try
    assert sorted(invalid) == ["588_CoT@1.json", "69_ChatGPT_DFS_woFilter_w2.json", "8_ChatGPT_DFS_woFilter_w2.json"]


def test_convert_keeps_all_node_kinds_and_finish_as_written():
    key = "toolbench/G1_answer/10_ChatGPT_DFS_woFilter_w2.json"
    data = json.loads(raw_answer_path(key).read_text(encoding="utf-8"))
    answer = convert_answer(data, "DFS_woFilter_w2")["answer"]
    roles, node = [], answer["answer_details"][0]
    while True:
        roles.append(node["role"])
        if not node["next"]:
            break
        node = node["next"][0]
    assert roles[:2] == ["system", "user"] and answer["total_steps"] == len(roles)
    assert node["message"]["name"] == "Finish" and node["message"]["response"] == ""
    assert answer["final_answer"] == data["answer_generation"]["final_answer"]


def test_invalid_walk_depends_on_the_seed():
    key = "toolbench/G3_answer/8_ChatGPT_DFS_woFilter_w2.json"
    data = json.loads(raw_answer_path(key).read_text(encoding="utf-8"))
    walks = {json.dumps(convert_answer(data, "DFS_woFilter_w2", seed=s)["answer"]) for s in range(12)}
    assert len(walks) > 1
    assert convert_answer(data, "DFS_woFilter_w2") == golden()["convert"][key]


def test_convert_rejects_what_is_not_an_answer_file():
    with pytest.raises(RecordError, match="x.json.*answer_generation"):
        convert_answer({"tree": {}}, "DFS_woFilter_w2", where="x.json")
    data = json.loads(raw_answer_path("toolbench/G1_answer/69_ChatGPT_DFS_woFilter_w2.json").read_text())
    with pytest.raises(RecordError, match="unknown method 'ReAct'"):
        convert_answer(data, "ReAct", where="69")


def test_reading_matches_eval_pass_rate():
    cases = golden()["read"]
    seen = {"finished": set(), "hallucinated": 0, "string_messages": 0}
    for key, entries in cases.items():
        rewrite = key.startswith("toolbench/")  # StableToolBench's eval_pass_rate.py has no hallucination check
        source = converted_entries(key)
        for qid, expected in entries.items():
            example = copy.deepcopy(source[qid])
            seen["string_messages"] += isinstance(example["answer"]["answer_details"][0]["next"][0]["message"], str)
            not_hallucinate = has_no_hallucination(example["available_tools"], example["answer"]) if rewrite else None
            steps, final = get_steps(example["answer"])
            assert (not_hallucinate, steps, final, ends_with_finish(final)) == (
                expected["not_hallucinate"], expected["answer_steps"], expected["final_step"], expected["finished"]
            ), (key, qid)
            assert example["answer"]["answer_details"] == expected["answer_details"], (key, qid)
            seen["finished"].add(expected["finished"])
            seen["hallucinated"] += expected["not_hallucinate"] is False
    assert seen["finished"] == {True, False} and seen["hallucinated"] > 0 and seen["string_messages"] > 0
