"""The proof of value's objective metrics (toolweave/evaluation/tool_use.py) count over the model's
replies: a reply with no parsed call (a model under `auto` that writes prose, or a call the engine's
parser cannot read) is a reply that is not a well-formed call, not a reply left out."""
import json

from toolweave.evaluation.tool_use import compare, score_episode
from toolweave.schemas import Episode

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
FINISH = {"type": "function", "function": {"name": "Finish", "parameters": {
    "type": "object", "properties": {"return_type": {"type": "string"}, "final_answer": {"type": "string"}},
    "required": ["return_type"]}}}


def _call(name, args):
    return {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}]}


def _episode(qid, *replies, status="answered"):
    messages = [{"role": "user", "content": "weather in Oslo?"}]
    for r in replies:
        messages += [r, {"role": "tool", "content": "{}"}] if r.get("tool_calls") else [r]
    return Episode(id=f"ep-{qid}", instruction_id=qid, method="cot", status=status, messages=messages,
                   tools=[WEATHER, FINISH])


def test_prose_and_unreadable_calls_count_as_replies_that_are_not_well_formed_calls():
    prose = _episode("q1", {"role": "assistant", "content": "<tool_call>{get_weather Oslo"},
                     {"role": "assistant", "content": "I cannot call tools."}, status="budget")
    s = score_episode(prose, {"get_weather"})
    assert (s.replies, s.calls, s.well_formed, s.relevant_api, s.calls_to_first_valid) == (2, 0, 0, 0, None)
    assert not s.finish_answer

    good = _episode("q2", _call("get_weather", "{not json"), _call("get_weather", {}),
                    _call("get_weather", {"city": "Oslo"}), _call("Finish", {"return_type": "give_answer"}))
    s = score_episode(good, {"get_weather"})
    # 4 replies: bad JSON (not formed), missing `city` (formed, not schema-valid), valid, Finish (formed, valid)
    assert (s.replies, s.calls, s.well_formed, s.schema_valid, s.relevant_api) == (4, 3, 3, 2, 3)
    assert s.calls_to_first_valid == 3 and s.finish_answer


def test_compare_pools_rates_over_replies_and_bootstraps_the_paired_difference():
    base = [score_episode(_episode(f"q{i}", {"role": "assistant", "content": "prose"}), {"get_weather"})
            for i in range(4)]
    trained = [score_episode(_episode(f"q{i}", _call("get_weather", {"city": "Oslo"}),
                                      _call("Finish", {"return_type": "give_answer"})), {"get_weather"})
               for i in range(4)]
    rows = {r["metric"]: r for r in compare(base, trained, resamples=200)}
    wf = rows["well_formed"]
    assert (wf["base"], wf["trained"], wf["difference"]) == (0.0, 1.0, 1.0)
    assert (wf["ci_low"], wf["ci_high"]) == (1.0, 1.0) and (wf["replies_base"], wf["replies_trained"]) == (4, 8)
    assert rows["relevant_api"]["trained"] == 0.5  # the Finish reply calls no API the query needs
    assert rows["calls_to_first_valid"]["n_base"] == 0 and rows["calls_to_first_valid"]["base"] is None
