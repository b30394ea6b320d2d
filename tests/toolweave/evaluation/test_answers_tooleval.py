"""toolweave's Answer reads and shows answers as ToolEval does (goldens: tests/data/reference/SOURCES.md,
`tooleval_reading_golden.json.gz`): ToolBench's published converted answers (string tool messages) are
finished where eval_pass_rate.py finds Finish, with its step texts; episodes show the judge what
convert_to_answer_format.py makes of their answer file."""
import copy
import gzip
import json
from functools import cache
from pathlib import Path

from toolweave.converters import tooleval
from toolweave.converters.toolbench import answer_to_episode
from toolweave.evaluation.answers import from_converted, from_episode

DATA = Path(__file__).parents[2] / "data"
REF = DATA / "reference" / "toolbench"


@cache
def golden() -> dict:
    with gzip.open(REF / "tooleval_reading_golden.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def test_published_converted_answers_are_finished_and_stepped_as_tooleval_reads_them():
    with gzip.open(REF / "default_evalset_sample.json.gz", "rt", encoding="utf-8") as f:
        sample = json.load(f)
    finished = set()
    for key, entries in sample.items():
        for qid, example in entries.items():
            expected = golden()["read"][f"toolbench/{key}"][qid]
            answer = from_converted(qid, copy.deepcopy(example))
            assert answer.finished == expected["finished"], (key, qid)
            assert answer.steps_text() == (expected["answer_steps"], expected["final_step"]), (key, qid)
            assert answer.toolbench_answer()["answer_details"] == expected["answer_details"], (key, qid)
            if answer.finished:  # the cut string message still names its function
                assert answer.steps[-1]["name"] == "Finish" and answer.final_answer, (key, qid)
            finished.add(answer.finished)
    assert finished == {True, False}


def test_episodes_show_the_judge_what_convert_to_answer_format_makes_of_them():
    answers = sorted((DATA / "toolbench" / "data_example" / "answer").glob("G*_answer/*.json"))
    assert len(answers) == 15
    for path in answers:
        key = f"toolbench/{path.parent.name}/{path.name}"
        expected = golden()["convert"][key]
        answer = from_episode(answer_to_episode(path))
        assert json.dumps(answer.converted()) == json.dumps(expected), key
        shown = copy.deepcopy(expected["answer"])
        tooleval.has_no_hallucination(expected["available_tools"], shown)
        assert answer.toolbench_answer() == shown, key
        assert answer.toolbench_final_answer() == expected["answer"]["final_answer"], key
        assert answer.steps_text() == tooleval.get_steps(shown), key


def _own_cot_episode(with_tree: bool):
    from toolweave.schemas import Episode
    call = {"id": "c0", "type": "function", "function": {"name": "search_for_demo", "arguments": '{"q": "x"}'}}
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Find x."},
                {"role": "assistant", "content": "I will search.", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c0", "content": '{"error": "", "response": "nothing"}'}]
    tree = [{"id": 0, "parent": None, "depth": 0, "message": None, "function": None, "status": "root"},
            {"id": 1, "parent": 0, "depth": 1, "message": messages[2], "function": "search_for_demo",
             "arguments": '{"q": "x"}', "observation": '{"error": "", "response": "nothing"}', "status_code": 0,
             "status": "ok"}]
    tools = [{"type": "function", "function": {"name": "search_for_demo", "description": "Searches.",
                                               "parameters": {"type": "object", "properties": {}}}}]
    return Episode(id="e", instruction_id="q", method="cot", query="Find x.", status="max_steps", messages=messages,
                   tools=tools, tree=tree if with_tree else None)


def test_own_cot_episodes_without_an_answer_are_converted_from_their_try():
    """ToolBench's converter reads an invalid CoT answer from `trys` (a KeyError without it): the episode's one
    chain is that try, from its explored tree or, without one, its messages."""
    for with_tree in (True, False):
        converted = from_episode(_own_cot_episode(with_tree)).converted()
        answer = converted["answer"]
        assert answer["method"] == "CoT@1" and answer["total_steps"] == 4, with_tree  # system, user, thought, call
        user = answer["answer_details"][0]["next"][0]
        thought = user["next"][0]
        assert (thought["role"], thought["message"]) == ("assistant", "I will search.")
        tool = thought["next"][0]
        assert tool["role"] == "tool" and tool["message"] == {
            "name": "search_for_demo", "arguments": '{"q": "x"}', "response": '{"error": "", "response": "nothing"}'}
