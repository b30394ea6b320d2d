"""Every export format round-trips through its importer: the 15 real ChatGPT DFSDT answers, one of
our own DFSDT episodes and a simulated (ToolAlpaca-shaped) episode with a clarifying question."""
import asyncio
import json
from pathlib import Path

import pytest

from toolweave.config import SolveConfig
from toolweave.converters.toolbench import TOOLBENCH_STEP_LINE, answer_to_episode, toolbench_ready
from toolweave.executors import SchemaMockExecutor
from toolweave.curation.export import (export_all, from_openai_finetune, from_sharegpt, from_toolalpaca_instances,
                              read_jsonl, read_toolbench_answers, renumber_calls, sharegpt_alternation_problem,
                              to_openai_finetune,
                              to_sharegpt, to_toolalpaca_instance, toolalpaca_entry, write_jsonl,
                              write_toolbench_answers)
from toolweave.schemas import Episode, Function, Instruction, RecordError, Tool
from toolweave.search import solve_instruction
from toolweave.testing.fake_llm import FakeChatModel, tool_call
from toolweave.toolsets import import_paths

DATA = Path(__file__).parents[1] / "data"
REAL = [answer_to_episode(p) for p in sorted((DATA / "toolbench/data_example/answer").glob("G*_answer/*.json"))]
TOOL = Tool(id="weather", name="weather", description="Weather", functions=[Function(
    name="forecast", parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])


def own_dfsdt() -> Episode:
    llm = FakeChatModel([
        {"content": "Let me look.", "tool_calls": [tool_call("forecast_for_weather", {"city": "Paris"})]},
        {"content": None, "tool_calls": [tool_call("Finish", {"return_type": "give_answer",
                                                                 "final_answer": "Sunny in Paris."}, "call_1")]}])
    return asyncio.run(solve_instruction(Instruction(id="w1", text="Weather in Paris?", tool_ids=["weather"]),
                                         [TOOL], llm, SchemaMockExecutor(), SolveConfig(method="dfsdt")))


SIMULATED = Episode(
    id="sim-1", instruction_id="w2", method="simulate_fc", query="What's the weather?", status="answered",
    final_answer="Sunny in Paris.", messages=[
        {"role": "user", "content": "What's the weather?"},
        {"role": "assistant", "content": "Which city?"},
        {"role": "user", "content": "Paris."},
        {"role": "assistant", "content": "I will call forecast.", "tool_calls": [
            {"id": "x9", "type": "function", "function": {"name": "forecast", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "x9", "name": "forecast", "content": '{"sky": "sunny"}'},
        {"role": "assistant", "content": "Sunny in Paris."}],
    tools=[{"type": "function", "function": {"name": "forecast", "parameters": TOOL.functions[0].parameters}}])
SINGLE_TURN = SIMULATED.model_copy(update={"id": "sim-2", "messages": [SIMULATED.messages[0], *SIMULATED.messages[3:]]})
ALL = REAL + [own_dfsdt(), SIMULATED]


def carried(ep: Episode) -> dict:
    """What every format carries: the conversation (call ids renumbered), tools, query and outcome."""
    return {"messages": renumber_calls(ep.messages), "tools": ep.tools, "query": ep.query,
            "status": ep.status, "final_answer": ep.final_answer}


def test_own_dfsdt_episode_is_what_the_search_made():
    ep = ALL[-2]
    assert ep.status == "answered" and [m["role"] for m in ep.messages] == [
        "system", "user", "assistant", "tool", "assistant", "tool"]


def test_sharegpt_round_trips_every_episode_through_a_jsonl_file(tmp_path):
    write_jsonl((to_sharegpt(ep) for ep in ALL), tmp_path / "sharegpt.jsonl")
    rows = read_jsonl(tmp_path / "sharegpt.jsonl")
    assert {t["from"] for r in rows for t in r["conversations"]} == {"human", "gpt", "function_call", "observation"}
    back = [from_sharegpt(r) for r in rows]
    for ep, b in zip(ALL, back, strict=True):
        assert (b.id, b.instruction_id, b.method) == (ep.id, ep.instruction_id, ep.method)
        assert carried(b) == carried(ep), ep.id
    first_call = next(t for t in rows[-2]["conversations"] if t["from"] == "function_call")
    assert first_call["thought"] == "Let me look." and json.loads(first_call["value"])["name"] == "forecast_for_weather"
    with pytest.raises(RecordError, match="unknown 'from' 'robot'"):
        from_sharegpt({"id": "bad", "conversations": [{"from": "robot", "value": "x"}], "tools": "[]"})


def test_openai_finetune_jsonl_round_trips_messages_and_tools_exactly(tmp_path):
    write_jsonl((to_openai_finetune(ep) for ep in ALL), tmp_path / "ft.jsonl")
    rows = read_jsonl(tmp_path / "ft.jsonl")
    assert all(set(r) == {"messages", "tools"} for r in rows)
    assert not any("name" in m for r in rows for m in r["messages"] if m["role"] == "tool")
    for ep, row in zip(ALL, rows, strict=True):
        b = from_openai_finetune(row)
        assert b.messages == ep.messages and b.tools == ep.tools, ep.id
        assert (b.status, b.final_answer) == (ep.status, ep.final_answer), ep.id  # the query is the user turn


def test_toolalpaca_instance_file_round_trips(tmp_path):
    alpaca = import_paths([DATA / "toolalpaca/eval_simulated.json"]).tools[0]
    entry = toolalpaca_entry(alpaca, [SINGLE_TURN])
    assert entry["Name"] == alpaca.name and "Documentation" in entry and "Function_Projection" in entry
    path = tmp_path / "instances.json"
    path.write_text(json.dumps([entry]))
    [back] = from_toolalpaca_instances(json.loads(path.read_text())[0])
    assert carried(back) == dict(carried(SINGLE_TURN), tools=[])  # the tools live in the entry, not the instance
    # an instance holds one question: a clarifying exchange cannot be written, and is refused, not cut
    with pytest.raises(RecordError, match="sim-1.*a ToolAlpaca instance holds one user question"):
        to_toolalpaca_instance(SIMULATED)
    step = entry["Instances"][0]["intermediate_steps"][0]
    assert step == [["forecast", '{"city": "Paris"}', ' I will call forecast.\nAction: forecast\nAction Input: '
                     '{"city": "Paris"}'], '{"sky": "sunny"}']
    # DFSDT episodes (ending on Finish) are a fixed point after their first export
    for ep in REAL:
        once = to_toolalpaca_instance(ep)
        again = from_toolalpaca_instances({"Name": "t", "Instances": [once]})[0]
        assert to_toolalpaca_instance(again) == once, ep.id


def test_toolbench_answer_files_round_trip(tmp_path):
    paths = write_toolbench_answers(ALL[:-1], tmp_path / "toolbench")
    assert paths[0].name == f"{REAL[0].instruction_id}_ChatGPT_DFS_woFilter_w2.json"
    back = read_toolbench_answers(tmp_path / "toolbench")
    by_id = {b.instruction_id: b for b in back}
    for ep in REAL:
        b = by_id[ep.instruction_id]
        strip = lambda e: e.model_dump(exclude={"extra"}) | {"extra": {"toolbench": {  # noqa: E731
            k: v for k, v in e.extra["toolbench"].items() if k != "source_file"}}}
        assert strip(b) == strip(ep), ep.id
    # ToolBench's train_messages end on the Finish call: its fixed observation is not written; the
    # system message gets the step clause ToolBench's preprocess asserts
    own, solved = by_id["w1"], carried(toolbench_ready(ALL[-2]))
    assert solved["messages"][0]["content"].startswith(TOOLBENCH_STEP_LINE + "\n")
    assert solved["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "name": "Finish",
                                      "content": '{"response":"successfully giving the final answer."}'}
    assert carried(own) == dict(solved, messages=solved["messages"][:-1])


def test_export_all_writes_every_format(tmp_path):
    counts = export_all(ALL, tmp_path, tools=[TOOL], tool_of={"w1-dfsdt": "weather", "sim-1": "weather"})
    assert counts == {"sharegpt": 17, "openai_finetune": 17, "toolbench": 17, "toolalpaca": 1,
                      "refused": {"toolalpaca": ["sim-1: a ToolAlpaca instance holds one user question "
                                                 "(2 user turns)"]}}  # every conversation alternates
    [entry] = json.loads((tmp_path / "toolalpaca.json").read_text())
    assert entry["Name"] == "weather" and entry["Instances"][0]["output"] == "Sunny in Paris."


def test_toolbench_answers_meet_what_toolbenchs_preprocess_reads(tmp_path):
    """ToolBench's preprocess/preprocess_toolllama_data.py (OpenBMB/ToolBench d56fdd8, run outside this
    repo on these exports: the 15 real answers gave 50 training instances; our own DFSDT episode stopped
    at its assertion on the system message before `toolbench_ready`, and gave 2 instances after). What it reads: files whose name
    holds the method, answer_generation.valid_data / query / function / train_messages, a `content`
    key on every message, the step clause in the system message, an assistant turn last."""
    paths = write_toolbench_answers(ALL[:-1], tmp_path)
    for path in paths:
        assert "DFS_woFilter_w2" in path.name
        ag = json.loads(path.read_text())["answer_generation"]
        assert {"valid_data", "query", "function"} <= set(ag)
        for example in ag.get("train_messages", []) if ag["valid_data"] else []:
            assert all("role" in m and "content" in m for m in example), path.name
            assert "with a function call to actually excute your step." in example[0]["content"]
            assert example[-1]["role"] == "assistant"  # a turn without function_call is skipped there


def test_sharegpt_records_that_do_not_alternate_are_named():
    thought_then_call = SINGLE_TURN.model_copy(update={"id": "sim-3", "messages": [
        SINGLE_TURN.messages[0], {"role": "assistant", "content": "Thinking."}, *SINGLE_TURN.messages[1:]]})
    assert sharegpt_alternation_problem(to_sharegpt(SINGLE_TURN)) is None
    rec = to_sharegpt(thought_then_call)  # the lone thought rides on the call's turn, and comes back
    assert sharegpt_alternation_problem(rec) is None and rec["conversations"][1]["prior_thoughts"] == ["Thinking."]
    assert carried(from_sharegpt(rec)) == carried(thought_then_call)
    broken = dict(rec, conversations=[rec["conversations"][0], {"from": "gpt", "value": "a"}, *rec["conversations"][1:]])
    assert sharegpt_alternation_problem(broken) == (
        "turn 2 is 'function_call', LLaMA-Factory expects one of ('human', 'observation')")
