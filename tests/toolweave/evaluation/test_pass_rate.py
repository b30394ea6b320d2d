import asyncio
import itertools

import pytest

from toolweave.evaluation.answers import GIVE_UP, Answer
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.labels import (FAIL, PASS, UNSURE, AnswerStatus, TaskStatus, majority, pass_label,
                                         seeded)
from toolweave.evaluation.pass_rate import evaluate_pass_rate, judge_round, summarize


def answer(qid="q1", final="Paris is the capital of France.", finished=True, method="dfsdt") -> Answer:
    return Answer(query_id=qid, query="What is the capital of France?", finished=finished, final_answer=final,
                  steps=[{"name": "get_capital_for_geo", "arguments": '{"country": "France"}', "response": "Paris"},
                         {"name": "Finish", "arguments": "{}", "response": ""}],
                  tool_names=["get_capital_for_geo", "Finish"], method=method)


EXPECTED = {  # ToolBench rtl.is_passed, every combination
    ("Solved", "Solvable"): PASS, ("Solved", "Unsure"): PASS, ("Solved", "Unsolvable"): PASS,
    ("Unsolved", "Solvable"): FAIL, ("Unsolved", "Unsure"): UNSURE, ("Unsolved", "Unsolvable"): PASS,
    ("Unsure", "Solvable"): UNSURE, ("Unsure", "Unsure"): UNSURE, ("Unsure", "Unsolvable"): PASS,
}


@pytest.mark.parametrize("a,t", list(EXPECTED))
def test_pass_label_table(a, t):
    assert pass_label(AnswerStatus(a), TaskStatus(t)) == EXPECTED[(a, t)]


@pytest.mark.parametrize("a,t", list(EXPECTED))
def test_round_through_scripted_judge(judge_kit, a, t):
    model = judge_kit.make({"check_answer_status": a, "parse_answer_status": a, "check_task_solvable": t})
    r = asyncio.run(judge_round(Judge(model), answer(), seed=0, round_no=0))
    assert r.answer_status.value == a
    assert r.label == EXPECTED[(a, t)]
    assert r.resolved in (PASS, FAIL) and (r.label == UNSURE or r.resolved == r.label)
    # the whole answer is looked at only when the final answer was Unsure
    assert judge_kit.calls(model, "parse_answer_status") == (a == "Unsure")
    # a solved answer's task is solvable by definition: not asked
    assert judge_kit.calls(model, "check_task_solvable") == (a != "Solved")
    assert r.task_status.value == ("Solvable" if a == "Solved" else t)


def test_unsure_final_answer_resolved_by_whole_answer(judge_kit):
    model = judge_kit.make({"check_answer_status": "Unsure", "parse_answer_status": "Solved",
                            "check_task_solvable": "Solvable"})
    r = asyncio.run(judge_round(Judge(model), answer(), 0, 0))
    assert (r.answer_status, r.label) == (AnswerStatus.SOLVED, PASS)
    prompt = next(q for q in model.requests if q["tool_choice"]["function"]["name"] == "parse_answer_status")
    assert "get_capital_for_geo" in prompt["messages"][0]["content"]  # the tool calls were shown


def test_no_finish_fails_without_llm_call(judge_kit):
    model = judge_kit.make({})
    r = asyncio.run(judge_round(Judge(model), answer(finished=False, final=""), 0, 0))
    assert (r.answer_status, r.task_status, r.resolved, r.reason) == (
        AnswerStatus.UNSOLVED, TaskStatus.SOLVABLE, FAIL, "No answer")
    assert model.requests == []


def test_give_up_is_unsolved_unjudged_but_task_checked(judge_kit):
    model = judge_kit.make({"check_task_solvable": "Unsolvable"})
    r = asyncio.run(judge_round(Judge(model), answer(final=GIVE_UP), 0, 0))
    assert r.answer_status is AnswerStatus.UNSOLVED and r.label == PASS  # unsolvable task: giving up passes
    assert judge_kit.calls(model, "check_answer_status") == 0
    assert judge_kit.calls(model, "check_task_solvable") == 1


def test_unsure_coin_is_seeded_and_fair(judge_kit):
    model = judge_kit.make({"check_answer_status": "Unsure", "parse_answer_status": "Unsure",
                            "check_task_solvable": "Unsure"})
    answers = [answer(qid=f"q{i}") for i in range(40)]
    run = lambda seed: asyncio.run(evaluate_pass_rate(answers, Judge(model), votes=1, seed=seed))
    a, b, c = run(7), run(7), run(8)
    labels = lambda res: [q.rounds[0].resolved for q in res]
    assert all(q.rounds[0].label == UNSURE for q in a)
    assert labels(a) == labels(b)  # same seed, same coins
    assert labels(a) != labels(c)  # another seed, other coins
    assert 8 <= labels(a).count(PASS) <= 32  # a fair coin over 40 flips


def test_majority_vote_and_tie_coin():
    rng = seeded(0, "t")
    assert majority([PASS, PASS, PASS, FAIL], rng) == PASS
    assert majority([PASS, FAIL, FAIL, FAIL], rng) == FAIL
    ties = {majority([PASS, FAIL], seeded(s, "tie")) for s in range(20)}
    assert ties == {PASS, FAIL}
    assert majority([PASS, FAIL], seeded(3, "tie")) == majority([PASS, FAIL], seeded(3, "tie"))


def test_votes_are_independent_rounds_and_summarized(judge_kit):
    # round k of query q: the judge says Solved on rounds 0-2, Unsolved on round 3 (task solvable)
    counter = itertools.count()
    script = ["Solved", "Solved", "Solved", "Unsolved"]

    def table(fn, req):
        return script[next(counter) % 4] if fn == "check_answer_status" else "Solvable"

    res = asyncio.run(evaluate_pass_rate([answer()], Judge(judge_kit.make(table)), votes=4, seed=0,
                                         concurrency=1))
    (q,) = res
    assert [r.resolved for r in q.rounds] == [PASS, PASS, PASS, FAIL]
    assert q.label == PASS
    assert q.solvable_score == pytest.approx(0.75)
    s = summarize(res)
    assert s["pass_rate"] == 1.0
    assert s["pass_rate_mean"] == pytest.approx(0.75)
    assert s["pass_rate_std"] == pytest.approx(0.4330127, rel=1e-5)  # pstdev of [1, 1, 1, 0]
    assert s["solvable_pass_rate_mean"] == pytest.approx(0.75)


def test_garbage_is_retried_then_unsure_with_reason(judge_kit):
    model = judge_kit.make(lambda fn, req: {"content": "I think it is fine, maybe."} if fn == "check_answer_status"
                           else ({"content": '{"answer_status": "Perhaps"}'} if fn == "parse_answer_status"
                                 else "Solvable"))
    r = asyncio.run(judge_round(Judge(model, retries=2), answer(), 0, 0))
    assert r.answer_status is AnswerStatus.UNSURE and r.label == UNSURE
    assert judge_kit.calls(model, "check_answer_status") == 3  # 1 + 2 retries
    assert r.judge_failures == 2
    assert "judge gave no usable check_answer_status" in r.reason and "Perhaps" in r.reason


def test_judge_parses_strictly_prose_and_json_in_content_are_failures(judge_kit):
    # tool-call mode reads the tool call only (ToolEval reads function_call / tool_calls[0]): JSON in content is prose
    replies = {"check_answer_status": {"content": '{"reason": "ok", "answer_status": "Solved"}'},
               "parse_answer_status": {"content": "Solved, I think."}, "check_task_solvable": "Solvable"}
    model = judge_kit.make(replies)
    r = asyncio.run(judge_round(Judge(model, retries=1), answer(), 0, 0))
    assert r.answer_status is AnswerStatus.UNSURE and r.judge_failures == 2
    assert judge_kit.calls(model, "check_answer_status") == 2 and "prose instead" in r.reason
    # arguments as a string, and a verdict without its reason is unusable (ToolEval reads ret['reason'])
    ok = {"content": None, "tool_calls": [{"function": {"name": "check_answer_status",
                                                        "arguments": '{"reason": "r", "answer_status": "Solved"}'}}]}
    no_reason = {"content": None, "tool_calls": [{"function": {"name": "check_answer_status",
                                                               "arguments": '{"answer_status": "Solved"}'}}]}
    seq = iter([no_reason, ok])
    model = judge_kit.make(lambda fn, req: next(seq))
    r = asyncio.run(judge_round(Judge(model, retries=1), answer(), 0, 0))
    assert r.answer_status is AnswerStatus.SOLVED and r.judge_calls == 2 and r.judge_failures == 0


def test_json_schema_mode_takes_only_a_whole_json_object(judge_kit):
    model = judge_kit.make({"check_answer_status": {"content": 'Sure: {"reason": "ok", "answer_status": "Solved"}'},
                            "parse_answer_status": {"content": ' {"reason": "ok", "answer_status": "Solved"}\n'},
                            "check_task_solvable": "Solvable"})
    r = asyncio.run(judge_round(Judge(model, output="json_schema", retries=0), answer(), 0, 0))
    assert r.answer_status is AnswerStatus.SOLVED and r.judge_failures == 1  # the first reply was prose


def test_json_schema_mode_asks_for_a_schema_and_parses_the_content(judge_kit):
    model = judge_kit.make({"check_answer_status": "Unsolved", "check_task_solvable": "Unsolvable"})
    r = asyncio.run(judge_round(Judge(model, output="json_schema"), answer(), 0, 0))
    assert (r.answer_status, r.task_status, r.label) == (AnswerStatus.UNSOLVED, TaskStatus.UNSOLVABLE, PASS)
    schema = model.requests[0]["json_schema"]
    assert schema["properties"]["answer_status"]["enum"] == ["Solved", "Unsolved", "Unsure"]
    assert model.requests[0]["tools"] is None
