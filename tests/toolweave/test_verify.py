"""APIGen's three checks (format, execution, semantic) on real ToolBench DFSDT answers and on
episodes built to fail one way each; the VerifiedEpisode record; what sft_data may train on."""
import asyncio
import json
from pathlib import Path

import pyarrow as pa
import pytest

from toolweave.config import VerifyConfig
from toolweave.converters.toolbench import answer_to_episode
from toolweave.evaluation.judge import Judge
from toolweave.schemas import Episode
from toolweave.testing.fake_llm import FakeChatModel, tool_call
from toolweave.toolsets.export import finish_function
from toolweave.curation.verify import (VerifiedEpisode, check_execution, check_format, select_for_sft, sft_exclusion,
                              summarize, verify_episode, verify_episodes)

ANSWERS = sorted(Path(__file__).parents[1].joinpath("data/toolbench/data_example/answer").glob("*/*.json"))
WEATHER = {"type": "function", "function": {"name": "forecast_for_weather", "description": "forecast", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}
NO_SEMANTIC = VerifyConfig(semantic=False)


def episode(calls, *, final="Sunny.", status="answered", method="dfsdt", finish=True) -> Episode:
    """A DFSDT-shaped episode: each call is (name, arguments text, observation error)."""
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Weather in Paris?"}]
    if finish:
        calls = [*calls, ("Finish", json.dumps({"return_type": "give_answer", "final_answer": final}), "")]
    for i, (name, args, error) in enumerate(calls):
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": args}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "name": name,
                         "content": json.dumps({"error": error, "response": "{}" if error else "sunny"})})
    return Episode(id=f"ep-{len(calls)}-{status}-{final[:5]}", instruction_id="q1", method=method,
                   query="Weather in Paris?", status=status, final_answer=final if status == "answered" else "",
                   messages=messages, tools=[WEATHER, finish_function()])


GOOD = episode([("forecast_for_weather", '{"city": "Paris"}', "")])


def test_real_chatgpt_dfsdt_answers_format_and_execution():
    episodes = [answer_to_episode(p) for p in ANSWERS]
    assert len(episodes) == 15
    fmt = {Path(p).parent.name + "/" + Path(p).name.split("_")[0]: check_format(ep, NO_SEMANTIC)
           for p, ep in zip(ANSWERS, episodes)}
    exe = {k: check_execution(ep) for k, ep in zip(fmt, episodes)}
    assert [ep.status for ep in episodes].count("answered") == 9
    assert sum(r.passed for r in fmt.values()) == 8  # the 9 answered ones less the one hallucinated call
    # G3 query 21: ChatGPT called 'dota_2_steam_web', which the query did not offer
    assert fmt["G3_answer/21"].code == "unknown_function" and "'dota_2_steam_web'" in fmt["G3_answer/21"].reason
    assert {k for k, r in fmt.items() if r.code == "no_final_answer"} == {
        "G2_answer/10", "G2_answer/119", "G2_answer/127", "G3_answer/13"}  # the four give-ups
    assert fmt["G1_answer/69"].problems[0].startswith("no_tool_call")
    # a call that came back with an error fails execution even when the episode answered
    assert not exe["G1_answer/57"].passed and exe["G1_answer/57"].code == "call_error"
    assert "Timeout error" in exe["G2_answer/10"].reason
    assert sum(r.passed for r in exe.values()) == 10


@pytest.mark.parametrize("calls,code", [
    ([("forecast_for_weather", '{"city": "Paris"', "")], "invalid_arguments"),
    ([("forecast_for_weather", '["Paris"]', "")], "invalid_arguments"),
    ([("forecast_for_weather", '{"days": 2}', "")], "missing_required"),
    ([("forecast_for_weather", '{"city": "Paris", "days": "two"}', "")], "schema_violation"),
    ([("invalid_hallucination_function_name", '{"city": "Paris"}', "")], "unknown_function"),
    ([], "no_tool_call"),
])
def test_format_check_names_the_first_problem(calls, code):
    result = check_format(episode(calls), NO_SEMANTIC)
    assert not result.passed and result.code == code, result.problems
    assert check_format(GOOD, NO_SEMANTIC).passed


def test_format_final_answer_or_an_allowed_clarifying_question():
    gave_up = episode([("forecast_for_weather", '{"city": "Paris"}', "")], status="gave_up", finish=False)
    assert check_format(gave_up, NO_SEMANTIC).code == "no_final_answer"
    asks = GOOD.model_copy(update={"method": "simulate_fc", "status": "no_answer", "messages": [
        *GOOD.messages[:4], {"role": "assistant", "content": "Which city do you mean, Paris in France or Texas?"}]})
    assert check_format(asks, NO_SEMANTIC).passed
    assert check_format(asks, NO_SEMANTIC.model_copy(update={"clarify_methods": []})).code == "no_final_answer"
    assert check_format(GOOD.model_copy(update={"method": "simulate_fc", "status": "no_answer"}),
                        NO_SEMANTIC).code == "no_final_answer"


def test_execution_counts_only_well_formed_calls_and_failed_episodes():
    failing = episode([("forecast_for_weather", '{"city": "Paris"}', "HTTP 500"),
                       ("forecast_for_weather", '{"days": 1}', "Invalid arguments")])
    result = check_execution(failing)
    assert result.problems == ["call_error: call 1 (forecast_for_weather): HTTP 500"]
    crashed = GOOD.model_copy(update={"status": "error", "errors": ["LLM call 1 failed: boom"]})
    assert check_execution(crashed).reason == "episode_error: LLM call 1 failed: boom"


def judge_replying(statuses):
    """A judge model whose n-th check_answer_status verdict is statuses[n] ('garbage': unparseable)."""
    asked = []

    def handler(req):
        name = req["tool_choice"]["function"]["name"]
        asked.append(name)
        status = statuses[(len(asked) - 1) % len(statuses)]
        if status == "garbage":
            return "I cannot decide."
        return {"tool_calls": [tool_call(name, {"reason": f"it is {status}", "answer_status": status})]}

    return Judge(FakeChatModel(handler=handler, model="judge-m"), retries=0), asked


def test_semantic_check_votes_and_records_columns():
    cfg = VerifyConfig(votes=3)
    judge, asked = judge_replying(["Solved", "Unsolved", "Solved"])
    v = asyncio.run(verify_episode(GOOD, cfg, judge))
    assert (v.format_pass, v.execution_pass, v.semantic_pass, v.verified) == (True, True, True, True)
    assert v.semantic_score == pytest.approx(2 / 3) and len(v.semantic_votes) == 3 and v.judge_model == "judge-m"
    assert asked == ["check_answer_status"] * 3 and v.gave_answer and v.tool_calls == 1

    judge, _ = judge_replying(["Unsolved"])
    v = asyncio.run(verify_episode(GOOD, cfg, judge))
    assert not v.verified and v.semantic_reason == "judged_unsolved: 0/3 votes Solved (need 50%)"

    judge, asked = judge_replying(["garbage"])
    v = asyncio.run(verify_episode(GOOD, VerifyConfig(votes=2), judge))
    assert v.semantic_reason.startswith("judge_unusable") and v.semantic_score == 0
    # Unsure -> parse_answer_status with the whole execution, as ToolEval does
    assert asked == ["check_answer_status", "parse_answer_status"] * 2


def test_semantic_is_not_asked_once_format_or_execution_failed():
    judge, asked = judge_replying(["Solved"])
    bad = episode([("forecast_for_weather", '{"days": 1}', "")])
    v = asyncio.run(verify_episode(bad, VerifyConfig(), judge))
    assert asked == [] and v.semantic_pass is None and not v.verified and v.format_reason.startswith("missing_req")
    with pytest.raises(ValueError, match="needs a judge"):
        asyncio.run(verify_episode(GOOD, VerifyConfig()))


def test_verified_episode_round_trips_through_its_arrow_schema():
    judge, _ = judge_replying(["Solved"])
    verified = asyncio.run(verify_episodes([GOOD, episode([])], VerifyConfig(votes=1), judge))
    table = pa.Table.from_pylist([v.to_row() for v in verified], schema=VerifiedEpisode.ARROW)
    back = [VerifiedEpisode.from_row(r) for r in table.to_pylist()]
    assert back == verified
    summary = summarize(verified)
    assert summary["verified"] == 1 and summary["format"] == {
        "passed": 1, "failed": 1, "not_run": 0, "reasons": {"no_tool_call": 1}}
    assert summary["semantic"]["not_run"] == 1


def test_sft_takes_only_verified_episodes_by_default_and_each_rule_is_a_setting():
    judge, _ = judge_replying(["Solved"])
    ok = asyncio.run(verify_episode(GOOD, VerifyConfig(votes=1), judge))
    exec_fail = asyncio.run(verify_episode(episode([("forecast_for_weather", '{"city": "P"}', "HTTP 500")]),
                                           VerifyConfig(votes=1), judge))
    no_sem = asyncio.run(verify_episode(GOOD, NO_SEMANTIC))
    default = VerifyConfig()
    assert sft_exclusion(ok, default) is None
    assert sft_exclusion(GOOD, default) == "excluded: not verified (verify.require is set)"
    assert sft_exclusion(exec_fail, default).startswith("excluded: execution check failed: call_error")
    assert sft_exclusion(no_sem, default) == "excluded: semantic check not run (verify.require)"
    assert sft_exclusion(no_sem, VerifyConfig(require=["format", "execution"])) is None
    assert sft_exclusion(GOOD, VerifyConfig(require=[])) is None  # the setting that trains on everything
    toolbench = VerifyConfig(require=[], toolbench_rule=True)
    assert sft_exclusion(ok, toolbench) is None
    assert sft_exclusion(no_sem, toolbench).startswith("excluded: not judged solved")
    kept, excluded = select_for_sft([ok, exec_fail, GOOD], default)
    assert kept == [ok] and [e.id for e, _ in excluded] == [exec_fail.id, GOOD.id]


def test_a_simulation_that_ends_with_finish_is_well_formed_though_finish_was_not_offered():
    sim = GOOD.model_copy(update={"method": "simulate_fc", "tools": [WEATHER], "messages": [
        *GOOD.messages, {"role": "assistant", "content": "Sunny."}]})
    assert check_format(sim, NO_SEMANTIC).passed
    bad_finish = episode([("forecast_for_weather", '{"city": "Paris"}', ""),
                          ("Finish", '{"return_type": "maybe"}', "")], finish=False)
    assert check_format(bad_finish, NO_SEMANTIC).code == "schema_violation"


def test_real_simulations_a_clarified_react_run_passes_and_a_no_call_answer_fails():
    """Episodes made by simulate_episode itself: the issue's 'SQUAKE' case (an answer without any tool
    call, status answered) fails format; a ReAct run with a clarifying question and one call passes."""
    from toolweave.config import SimulateConfig
    from toolweave.executors import Observation
    from toolweave.schemas import Instruction
    from toolweave.solving.simulate import simulate_episode
    from toolweave.toolsets.toolalpaca import import_toolalpaca

    data = Path(__file__).parents[1] / "data/toolalpaca/eval_simulated.json"
    axolotl = next(t for t in import_toolalpaca(json.loads(data.read_text()), data.name).tools if t.name == "Axolotl")

    class Facts:
        async def execute(self, tool, function, arguments):
            return Observation(200, json.dumps({"facts": ["Axolotls live in Lake Xochimilco."]}))

    def simulate(instruction, replies, user_reply="Two habitat facts, please."):
        return asyncio.run(simulate_episode(instruction, [axolotl], assistant=FakeChatModel(replies),
                                            user=FakeChatModel(handler=lambda req: user_reply), executor=Facts(),
                                            cfg=SimulateConfig(protocol="react")))

    squake = simulate(Instruction(id="i-squake", text="SQUAKE", tool_ids=["axolotl"]), [
        "Thought: I know this.\nFinal Answer: SQUAKE: 1. A device that is used to generate electromagnetic energy"])
    assert squake.status == "answered"
    assert check_format(squake, NO_SEMANTIC).problems == ["no_tool_call: the episode calls no tool"]

    clarified = simulate(Instruction(id="i-ax", text="Tell me axolotl facts.", tool_ids=["axolotl"]), [
        "Thought: Ask first.\nFinal Answer: Which topic would you like?",
        'Thought: Look it up.\nAction: getAxolotlFacts\nAction Input: {"category": "habitat", "limit": 2}',
        "Thought: I now know the final answer.\nFinal Answer: Axolotls live in Lake Xochimilco."])
    assert [m["role"] for m in clarified.messages].count("user") == 2
    assert check_format(clarified, NO_SEMANTIC).passed and check_execution(clarified).passed
