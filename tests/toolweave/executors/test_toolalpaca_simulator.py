"""`executor.simulator: toolalpaca`: the LLM plays the API as ToolAlpaca's simulator.py asks it to."""
import asyncio
import json

from toolweave.config import ExecutorConfig
from toolweave.executors import make_executor
from toolweave.executors.llm_sim import curl_request, toolalpaca_reply
from toolweave.schemas import Function, Tool
from toolweave.testing.fake_llm import FakeChatModel

OPENAPI = {"openapi": "3.0.0", "info": {"title": "Demo"}, "servers": [{"url": "https://demo.example/api/"}],
           "paths": {"/items/{id}": {"get": {"parameters": []}}}}
TOOL = Tool(id="demo", name="Demo", description="A demo API.", openapi=OPENAPI, functions=[
    Function(name="getItem", method="get", path="/items/{id}", parameters={"type": "object", "properties": {}}),
    Function(name="addItem", method="post", path="/items", parameters={"type": "object", "properties": {}})])


def test_prompt_whole_document_curl_request_and_temperature():
    llm = FakeChatModel(['Status Code: 200\nResponse: {"id": 7, "name": "x"}\nExplanation: found it.'])
    ex = make_executor(ExecutorConfig(kind="llm", simulator="toolalpaca"), llm=llm)
    obs = asyncio.run(ex.execute(TOOL, TOOL.functions[0], {"id": 7, "verbose": True}))
    assert (obs.status_code, obs.body) == (200, '{"id":7,"name":"x"}')
    [message] = llm.requests[0]["messages"]
    assert message["role"] == "user" and message["content"].startswith("As an API simulator, your task is")
    assert message["content"].endswith("API Details:\nName: Demo\nOpenAPI Spec: " + json.dumps(OPENAPI) +
                                       "\n\nRequest Details:\ncurl -X GET   https://demo.example/api/items/7?verbose=True")
    assert llm.requests[0]["temperature"] == 0.5


def test_an_error_code_is_asked_again_and_a_repeated_code_is_kept():
    llm = FakeChatModel(["Status Code: 404\nResponse: {\"error\": \"no\"}", "Status Code: 500\nResponse: {}",
                         "Status Code: 404\nResponse: {\"error\": \"still no\"}"])
    ex = make_executor(ExecutorConfig(kind="llm", simulator="toolalpaca"), llm=llm)
    obs = asyncio.run(ex.execute(TOOL, TOOL.functions[0], {"id": 1}))
    assert (obs.status_code, obs.body, len(llm.requests)) == (404, '{"error":"still no"}', 3)


def test_post_body_and_unparseable_replies():
    assert curl_request(TOOL, TOOL.functions[1], {"name": "a"}) == \
        'curl -X POST -H "Content-Type: application/json" -d \'{"name": "a"}\' https://demo.example/api/items'
    assert toolalpaca_reply("Status Code: 200\nResponse: plain words") == (200, '{"response":"plain words"}')
    assert toolalpaca_reply("I cannot do that") is None
