"""`executor.simulator: stabletoolbench`: the LLM plays the API as StableToolBench's server asks it to."""
import asyncio

from toolweave.config import ExecutorConfig
from toolweave.executors import make_executor
from toolweave.schemas import Function, Tool
from toolweave.testing.fake_llm import FakeChatModel

TOOL = Tool(id="demo", name="Demo", description="A demo API.", functions=[
    Function(name="Search", description="Finds things.", parameters={"type": "object", "properties": {}})])


def test_prompt_reply_and_examples_are_stabletoolbenchs():
    llm = FakeChatModel(['{"error": "", "response": "first"}', '```json\n{"error": "", "response": {"a": 1}}\n```'])
    ex = make_executor(ExecutorConfig(kind="llm", simulator="stabletoolbench"), llm=llm)
    fn = TOOL.functions[0]
    one = asyncio.run(ex.execute(TOOL, fn, {"q": "x"}))
    two = asyncio.run(ex.execute(TOOL, fn, {"q": "y"}))
    assert (one.status_code, one.body, one.error) == (200, "first", None)
    assert two.body == '{"a": 1}'
    system, user = llm.requests[0]["messages"]
    assert system["content"].startswith("\nImagine you are an API Server operating within a specialized tool")
    assert "The error field should remain empty" in system["content"] and "status_code" not in system["content"]
    assert user["content"] == ("API Documentation:{'tool_description': 'A demo API.', 'api_info': [{'name': "
                               "'Search', 'description': 'Finds things.'}]}\nAPI Examples:[]\nAPI Input:{'q': 'x'}\n")
    assert "API Examples:[(\"{'q': 'x'}\", '{\"error\": \"\", \"response\": \"first\"}')]" in \
        llm.requests[1]["messages"][1]["content"]
    assert llm.requests[0]["max_tokens"] == 1024 and set(llm.requests[0]["json_schema"]["required"]) == {"error", "response"}


def test_executor_max_tokens_bounds_each_simulated_response():
    reply = '{"error": "", "response": "ok"}'
    for simulator, max_tokens, sent in (("stabletoolbench", None, 1024), ("toolweave", None, 512),
                                        ("stabletoolbench", 96, 96), ("toolweave", 96, 96)):
        llm = FakeChatModel([reply])
        ex = make_executor(ExecutorConfig(kind="llm", simulator=simulator, max_tokens=max_tokens), llm=llm)
        asyncio.run(ex.execute(TOOL, TOOL.functions[0], {"q": "x"}))
        assert llm.requests[0]["max_tokens"] == sent, (simulator, max_tokens)
