"""The judge over real HTTP: LLMClient against the scripted OpenAI-compatible server, with a fault."""
import asyncio

from toolweave.config import EndpointConfig
from toolweave.evaluation.answers import Answer
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.labels import PASS, AnswerStatus
from toolweave.evaluation.pass_rate import evaluate_pass_rate
from toolweave.llm.client import LLMClient
from toolweave.testing.fake_llm import tool_call
from toolweave.testing.scripted_server import ScriptedServer


def test_pass_rate_through_scripted_server_and_llm_client():
    def handler(body):
        fn = body["tool_choice"]["function"]["name"]
        assert body["tools"][0]["function"]["name"] == fn  # one forced function per question
        value = {"check_answer_status": ("answer_status", "Solved")}[fn]
        return {"tool_calls": [tool_call(fn, {"reason": "the answer names the capital", value[0]: value[1]})]}

    with ScriptedServer(handler=handler, faults={0: 500}, model="judge-model") as srv:
        client = LLMClient(EndpointConfig(base_url=srv.base_url, model="judge-model", is_vllm=False,
                                          max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05))
        ans = Answer(query_id="q", query="Capital of France?", finished=True, final_answer="Paris.")
        (q,) = asyncio.run(evaluate_pass_rate([ans], Judge(client), votes=2, seed=0))
        assert [r.answer_status for r in q.rounds] == [AnswerStatus.SOLVED] * 2 and q.label == PASS
        # 2 rounds + the request that got the 500 (retried by the client); no task question once solved
        assert len(srv.requests) == 3
        assert {r["tool_choice"]["function"]["name"] for r in srv.requests} == {"check_answer_status"}
        assert "Capital of France?" in srv.requests[0]["messages"][0]["content"]
