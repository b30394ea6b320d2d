"""Judge failures as ToolEval handles them: retried, then the run stops naming the query (presets),
or scored Unsure and counted (judge_failure: unsure). Over real HTTP: LLMClient against the scripted
OpenAI-compatible server on loopback; the reference's behaviour is tests/data/reference/toolbench/
judge_failures_golden.json (recorded from ToolBench's and StableToolBench's evaluator code)."""
import asyncio
import json
from pathlib import Path

import pytest

from toolweave.config import EndpointConfig, RunConfig
from toolweave.evaluation.answers import Answer
from toolweave.evaluation.judge import Judge, JudgeFailure, judge_options, retry_waits
from toolweave.evaluation.pass_rate import evaluate_pass_rate, summarize
from toolweave.llm.client import LLMClient
from toolweave.presets import apply_preset
from toolweave.testing.fake_llm import tool_call
from toolweave.testing.scripted_server import ScriptedServer

GOLDEN = json.loads((Path(__file__).parents[2] / "data/reference/toolbench/judge_failures_golden.json").read_text())
QUESTION = {"check_is_solved": ("check_answer_status", "answer_status"),
            "check_task_solvable": ("check_task_solvable", "task_status"),
            "select_better_answer": ("select_better_answer", "index")}
FIELDS = {"check_answer_status": {"query": "q", "answer": "Paris"}, "check_task_solvable": {"task": "{}"},
          "select_better_answer": {"query": "q", "answer_0": "a", "answer_1": "b"}}


def _client(srv: ScriptedServer) -> LLMClient:  # no retries of its own: each fault is one judge attempt
    return LLMClient(EndpointConfig(base_url=srv.base_url, model="judge", is_vllm=False, max_retries=0,
                                    backoff_base_s=0.01, backoff_max_s=0.01))


def _reply(step: dict, function: str) -> dict:
    """The golden's scripted reply as an OpenAI chat message."""
    if "prose" in step:
        return {"content": step["prose"]}
    args = step["raw_arguments"] if "raw_arguments" in step else json.dumps(step["call"])
    return {"tool_calls": [{"function": {"name": function, "arguments": args}}]}


def _toolbench_judge(model, **kw) -> Judge:
    cfg = RunConfig.model_validate(apply_preset({"preset": "toolbench"}))
    options = dict(judge_options(cfg.evaluate), retry_wait_s=0.0, **kw)  # the waits are checked on their own
    return Judge(model, retries=cfg.evaluate.judge_retries, **options)


@pytest.mark.parametrize("case", sorted(GOLDEN["stabletoolbench"]["cases"]))
def test_each_scripted_reply_sequence_as_the_reference_ends_it(case):
    ref = GOLDEN["stabletoolbench"]["cases"][case]
    assert GOLDEN["toolbench"]["cases"][case]["requests"] == ref["requests"]  # both ask alike; only waits differ
    function, decisive = QUESTION[ref["question"]]
    steps = list(ref["replies"])
    down = {i for i, s in enumerate(steps) if "error" in s}
    with ScriptedServer(handler=lambda body: _reply(steps[len(srv.requests) - 1], function),
                        faults=lambda i, body: 500 if i in down else None) as srv:
        judge = _toolbench_judge(_client(srv))
        if "raised" in ref and ref["requests"] == judge.retries + 1:
            # failed inside function_call's 3 tries: retried as often, then the run stops naming the query
            with pytest.raises(JudgeFailure, match=r"judge failed on query 'G1_q7'.*after 3 attempt"):
                asyncio.run(judge.ask(function, FIELDS[function], query="G1_q7"))
            assert len(srv.requests) == ref["requests"]
        elif "raised" in ref:
            # a verdict that parsed but is unusable (value outside the enum, reason missing): ToolBench's
            # run ends at once; StableToolBench's backoff asks again and takes the next reply, as toolweave does
            assert ref["requests"] == 1
            v = asyncio.run(judge.ask(function, FIELDS[function], query="G1_q7"))
            assert v.ok and v.values[decisive] == steps[1]["call"][decisive] and len(srv.requests) == 2
        else:
            v = asyncio.run(judge.ask(function, FIELDS[function], query="G1_q7"))
            assert v.ok and str(v.values[decisive]) == str(ref["value"])
            assert v.attempts == len(srv.requests) == ref["requests"]


def test_preset_waits_between_tries_as_stabletoolbench():
    cfg = RunConfig.model_validate(apply_preset({"preset": "toolbench"}))
    judge = Judge(None, retries=cfg.evaluate.judge_retries, **judge_options(cfg.evaluate))
    assert judge.on_failure == "stop"
    assert judge.waits == GOLDEN["stabletoolbench"]["cases"]["prose_always"]["sleeps"] == [4.0, 4.0]
    assert retry_waits(5, 4, 10) == [4.0, 4.0, 4.0, 8.0, 10.0]  # tenacity wait_exponential(1, 4, 10)
    assert retry_waits(2, 0, 10) == GOLDEN["toolbench"]["cases"]["prose_always"]["sleeps"] == [0.0, 0.0]
    alpaca = RunConfig.model_validate(apply_preset({"preset": "toolalpaca"})).evaluate
    assert (alpaca.judge_failure, alpaca.judge_retries) == ("stop", 4)
    assert RunConfig().evaluate.judge_failure == "unsure"  # outside the presets: scored Unsure, counted


def _solved(fn: str) -> dict:
    return {"tool_calls": [tool_call(fn, {"answer_status": "Solved", "reason": "names the capital"})]}


def _answers(n: int) -> list[Answer]:
    return [Answer(query_id=f"q{i}", query="Capital of France?", finished=True, final_answer="Paris.")
            for i in range(n)]


def test_server_failing_twice_then_answering_passes_under_stop():
    with ScriptedServer(handler=lambda body: _solved("check_answer_status"), faults={0: 500, 1: 503}) as srv:
        judge = Judge(_client(srv), retries=2, on_failure="stop")
        (q,) = asyncio.run(evaluate_pass_rate(_answers(1), judge, votes=1, seed=0))
        assert q.rounds[0].judge_calls == 3 and q.rounds[0].judge_failures == 0 and len(srv.requests) == 3


def test_server_always_failing_stops_naming_the_query():
    with ScriptedServer(handler=lambda body: _solved("check_answer_status"), faults=lambda i, body: 500) as srv:
        judge = Judge(_client(srv), retries=2, on_failure="stop")
        with pytest.raises(JudgeFailure) as err:
            asyncio.run(evaluate_pass_rate(_answers(1), judge, votes=2, seed=0, concurrency=1))
        assert err.value.query == "q0" and err.value.function == "check_answer_status"
        assert "'q0'" in str(err.value) and "500" in str(err.value)
        assert len(srv.requests) == 3  # stopped after the first verdict's tries: the second round never asked


def test_server_answering_prose_under_unsure_is_counted_in_the_summary():
    prose = {"content": "Solved, clearly."}
    with ScriptedServer(handler=lambda body: prose) as srv:
        judge = Judge(_client(srv), retries=1, on_failure="unsure")
        results = asyncio.run(evaluate_pass_rate(_answers(2), judge, votes=2, seed=0))
        s = summarize(results)
        # per round: check_answer_status, parse_answer_status, check_task_solvable fail, 2 tries each
        assert s["judge_failures"] == 2 * 2 * 3 and s["judge_calls"] == 2 * 2 * 3 * 2 == len(srv.requests)
        assert {r.answer_status.value for q in results for r in q.rounds} == {"Unsure"}
