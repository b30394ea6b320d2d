import asyncio

from toolweave.evaluation.answers import Answer
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.labels import FAIL, PASS, AnswerStatus, TaskStatus
from toolweave.evaluation.pass_rate import QueryPass, Round
from toolweave.evaluation.win_rate import LOSE, TIE, WIN, Side, compare_round, evaluate_win_rate, summarize


def qp(qid, final, label, status, method) -> QueryPass:
    a = Answer(query_id=qid, query="Find me a pizza place.", finished=True, final_answer=final,
               steps=[{"name": "search_for_food", "arguments": "{}", "response": final}], method=method)
    r = Round(AnswerStatus(status), TaskStatus.SOLVABLE, label, label)
    return QueryPass(a, [r] * 4, label)


def test_pass_labels_decide_without_judge(judge_kit):
    model = judge_kit.make({})
    cand = [qp("a", "Luigi's", PASS, "Solved", "dfsdt"), qp("b", "sorry", FAIL, "Unsolved", "dfsdt")]
    ref = [qp("a", "no idea", FAIL, "Unsolved", "cot"), qp("b", "Mario's", PASS, "Solved", "cot")]
    res = asyncio.run(evaluate_win_rate(cand, ref, Judge(model), votes=4, seed=0))
    assert [r.label for r in res] == [WIN, LOSE]
    assert all(x["how"] == "pass label" for r in res for x in r.rounds)
    assert model.requests == []


def test_statuses_follow_answers_through_the_shuffle(judge_kit):
    # both failed; only the candidate's answer is Unsure -> it must win whatever order it is shown in
    model = judge_kit.make({})
    orders = set()
    for seed in range(12):
        cand, ref = Side.of(qp("a", "maybe Luigi's", FAIL, "Unsure", "dfsdt")), Side.of(qp("a", "x", FAIL, "Unsolved", "cot"))
        r = asyncio.run(compare_round(Judge(model), cand, ref, seed, 0))
        orders.add(tuple(r["order"]))
        assert r["winner"] == "candidate", r
    assert orders == {(0, 1), (1, 0)}  # both presentation orders happened
    assert model.requests == []


def test_judge_compares_in_shuffled_order_and_index_maps_back(judge_kit):
    # a judge that prefers the answer mentioning "Luigi", wherever it is shown
    def table(fn, req):
        text = req["messages"][0]["content"]
        first = text.split("Answer_1:")[0]
        return 0 if "Luigi" in first else 1

    model = judge_kit.make(table)
    cand = [qp(f"q{i}", "Luigi's on 5th street", PASS, "Solved", "dfsdt") for i in range(6)]
    ref = [qp(f"q{i}", "Mario's on 3rd street", PASS, "Solved", "cot") for i in range(6)]
    res = asyncio.run(evaluate_win_rate(cand, ref, Judge(model), votes=2, seed=1))
    assert all(r.label == WIN and r.candidate_wins == 2 for r in res)
    shown_first = {x["order"][0] for r in res for x in r.rounds}
    assert shown_first == {0, 1}  # the shuffle put each side first at least once
    assert summarize(res)["win_rate"] == 1.0


def test_order_biased_judge_gives_ties_and_garbage_counts_for_nobody(judge_kit):
    model = judge_kit.make({"select_better_answer": 0})  # always the first shown
    cand = [qp("a", "Luigi's", PASS, "Solved", "dfsdt")]
    ref = [qp("a", "Mario's", PASS, "Solved", "cot")]
    res = asyncio.run(evaluate_win_rate(cand, ref, Judge(model), votes=40, seed=0))
    r = res[0]
    assert r.candidate_wins + r.reference_wins == 40 and 8 <= r.candidate_wins <= 32
    bad = judge_kit.make({"select_better_answer": {"content": "both are nice"}})
    res = asyncio.run(evaluate_win_rate(cand, ref, Judge(bad, retries=0), votes=2, seed=0))
    assert res[0].label == TIE and all(x["winner"] is None for x in res[0].rounds)
    assert "judge gave no usable select_better_answer" in res[0].rounds[0]["how"]
    s = summarize(res)
    assert (s["win_rate"], s["tie_rate"], s["lose_rate"]) == (0.0, 1.0, 0.0)


def test_toolbench_style_rechecks_status_each_round_and_shows_processed_answers(judge_kit):
    """ToolBench's eval_preference.py (use_pass_rate false): check_is_solved again in each of the 2
    rounds, then select_better_answer on answers cut at 1000 characters with full details, no method."""
    import json

    from toolweave.config import RunConfig
    from toolweave.evaluation.judge import judge_options
    from toolweave.presets import apply_preset

    ev = RunConfig.model_validate(apply_preset({"preset": "toolbench"})).evaluate
    assert (ev.win_votes, ev.win_status) == (2, "recheck")
    long = "Luigi's " * 300  # 2,400 characters
    # the pass-rate rounds said Solved for the candidate only; rechecking says both are Unsolved
    model = judge_kit.make({"check_answer_status": "Unsolved", "check_task_solvable": "Solvable",
                            "select_better_answer": 0})
    cand, ref = [qp("a", long, PASS, "Solved", "dfsdt")], [qp("a", "x" * 50, PASS, "Unsolved", "cot")]
    # the stage passes `votes=cfg.evaluate.votes` (4); the judge built from cfg.evaluate carries 2 and recheck
    res = asyncio.run(evaluate_win_rate(cand, ref, Judge(model, **judge_options(ev)), votes=ev.votes, seed=0))
    assert len(res[0].rounds) == 2 and all(x["how"].startswith("judge") for x in res[0].rounds)
    checks = [r for r in model.requests if r["tools"][0]["function"]["name"] == "check_answer_status"]
    assert len(checks) == 4  # both answers, both rounds
    selects = [r for r in model.requests if r["tools"][0]["function"]["name"] == "select_better_answer"]
    assert len(selects) == 2 and {(r["temperature"], r["max_tokens"]) for r in model.requests} == {(0.2, 1000)}
    text = selects[0]["messages"][0]["content"]
    shown = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert len(shown) == 2 and all("method" not in a and len(a["final_answer"]) <= 1000 for a in shown)
    assert any(a["answer_details"] and a["answer_details"][0]["message"]["response"] == long for a in shown)
    # toolweave's default reuses the pass-rate status: the Solved candidate wins unjudged
    model2 = judge_kit.make({})
    res2 = asyncio.run(evaluate_win_rate(cand, ref, Judge(model2), votes=4, seed=0))
    assert res2[0].label == WIN and model2.requests == []
