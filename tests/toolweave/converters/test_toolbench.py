import json
from pathlib import Path

import pytest

from toolweave.converters.toolbench import (answer_to_episode, episode_to_toolbench_answer,
                                            episode_to_train_messages)
from toolweave.schemas import Episode, RecordError

DATA = Path(__file__).parents[2] / "data"
TOOLBENCH = sorted((DATA / "toolbench/data_example/answer").glob("G*_answer/*.json"))
STABLE = sorted((DATA / "stabletoolbench/data_example/answer").glob("*/*/*.json"))


def test_the_fifteen_toolbench_files_are_there():
    assert len(TOOLBENCH) == 15


@pytest.mark.parametrize("path", TOOLBENCH + STABLE, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_train_messages_round_trip_exactly(path):
    original = json.loads(path.read_text())
    ep = answer_to_episode(path)
    # through Parquet's row form too: what a later stage reads back
    ep = Episode.from_row(ep.to_row())
    assert episode_to_train_messages(ep) == (original["answer_generation"].get("train_messages") or [])
    exported = episode_to_toolbench_answer(ep)
    for key in ("win", "forward_args", "compare_candidates", "tree", "trys", "try_count"):
        assert exported.get(key) == original.get(key), key
    for key, value in original["answer_generation"].items():
        assert exported["answer_generation"].get(key) == value, key


def test_status_counts_match_the_files():
    statuses = [answer_to_episode(p).status for p in TOOLBENCH]
    # finish_type in the files: 9 give_answer, 4 give_up (G2 10/119/127, G3 13), 2 with no terminal node
    assert statuses.count("answered") == 9
    assert statuses.count("gave_up") == 4
    assert statuses.count("no_answer") == 2


def test_episode_is_openai_chat_with_tool_calls_and_tree():
    path = DATA / "toolbench/data_example/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json"
    ep = answer_to_episode(path)
    assert ep.method == "dfsdt" and ep.status == "answered" and ep.instruction_id == "G1_10"
    assert ep.llm_calls == 3 and ep.prompt_tokens + ep.completion_tokens == 2916
    roles = [m["role"] for m in ep.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    call = ep.messages[2]["tool_calls"][0]
    assert call["function"]["name"] == "transitaires_for_transitaires"
    assert ep.messages[3]["tool_call_id"] == call["id"]
    assert ep.final_answer.startswith("The contact details of the 'Gondrand'")
    assert [t["function"]["name"] for t in ep.tools][-1] == "Finish"
    assert all(t["type"] == "function" for t in ep.tools)
    # tree: flat node dicts, parent links, pre-order ids
    assert ep.tree[0]["parent"] is None and len(ep.tree) == 7
    for n in ep.tree[1:]:
        assert n["parent"] < n["id"] and n["depth"] == ep.tree[n["parent"]]["depth"] + 1
    finish = [n for n in ep.tree if n.get("observation_code") == 3]
    assert finish and finish[0]["status"] == "finish_answer"


def test_diversity_prompts_stay_out_of_the_messages():
    path = DATA / "toolbench/data_example/answer/G2_answer/119_ChatGPT_DFS_woFilter_w2.json"
    ep = answer_to_episode(path)
    assert all("valid" not in m for m in ep.messages)
    assert len(ep.extra["toolbench"]["invalid_messages"]) == 2
    assert ep.status == "gave_up" and ep.final_answer == ""


def test_cot_file_keeps_its_tries():
    path = DATA / "stabletoolbench/data_example/answer/virtual_chatgpt_cot/G1_instruction/1073_CoT@1.json"
    ep = answer_to_episode(path)
    assert ep.method == "cot" and ep.status == "answered" and ep.tree[0]["node_type"] == "root"


def test_bad_input_names_the_record(tmp_path):
    bad = tmp_path / "7_broken.json"
    bad.write_text("{not json")
    with pytest.raises(RecordError, match="7_broken.json"):
        answer_to_episode(bad)
    with pytest.raises(RecordError, match="answer_generation"):
        answer_to_episode({"win": True})


def test_our_own_episode_exports_one_example_per_assistant_turn():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "look up", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f_for_t", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "f_for_t", "content": "{\"a\": 1}"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c2", "type": "function",
                 "function": {"name": "Finish", "arguments": {"return_type": "give_answer", "final_answer": "1"}}}]}]
    ep = Episode(id="e", instruction_id="i", method="dfsdt", status="answered", final_answer="1", messages=msgs)
    train = episode_to_train_messages(ep)
    assert [len(t) for t in train] == [3, 5]
    assert train[0][2] == {"role": "assistant", "content": "look up",
                           "function_call": {"name": "f_for_t", "arguments": "{}"}}
    assert train[1][3] == {"role": "function", "name": "f_for_t", "content": "{\"a\": 1}"}
    assert json.loads(train[1][4]["function_call"]["arguments"])["final_answer"] == "1"
    answer = episode_to_toolbench_answer(ep)
    assert answer["answer_generation"]["finish_type"] == "give_answer"
    types = []
    node = answer["tree"]["tree"]
    while node["children"]:
        node = node["children"][0]
        types.append(node["node_type"])
    assert types == ["Thought", "Action", "Action Input", "Action", "Action Input"]
