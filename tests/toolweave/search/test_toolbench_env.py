"""The ToolBench environment options one by one (the recorded parity runs cover them together)."""
import asyncio
import json

from toolweave.executors import Observation
from toolweave.schemas import Function, Tool
from toolweave.search import EnvOptions, ToolEnv
from toolweave.search.toolbench import filter_response
from toolweave.toolsets.toolbench import response_schema_from_template

TEMPLATE = {"name": "str", "items": [{"id": "int", "_list_length": 2}], "meta": {"page": "int"}}


class Echo:
    def __init__(self, body):
        self.body, self.calls = body, []

    async def execute(self, tool, fn, args):
        self.calls.append(args)
        return Observation(200, self.body)


def env(body, **options):
    fn = Function(name="Search", description="Finds things.", response_schema=response_schema_from_template(TEMPLATE),
                  parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})
    tool = Tool(id="demo", name="Demo", category="Data", functions=[fn])
    executor = Echo(body)
    return ToolEnv([tool], executor, observation_limit=1024, options=EnvOptions(
        functions="toolbench", argument_check="json", finish_check="toolbench", name_match="endswith",
        observation_format="toolbench", response_limit=2048, **options)), executor


def test_filter_keeps_the_response_schema_keys_like_toolbench_server():
    body = json.dumps({"name": "x", "extra": 1, "items": [{"id": 1, "junk": 2}], "meta": {"page": 3, "total": 9}})
    assert filter_response(body, response_schema_from_template(TEMPLATE)) == \
        str({"name": "x", "items": [{"id": 1}], "meta": {"page": 3}})
    assert filter_response("not json", response_schema_from_template(TEMPLATE)) == "not json"
    assert filter_response(body, None) == body
    e, _ = env(body, response_mode="filter")
    step = asyncio.run(e.step("search_for_demo", '{"q": "a"}'))
    assert json.loads(step.observation)["response"] == str({"name": "x", "items": [{"id": 1}], "meta": {"page": 3}})
    e, _ = env(body)  # full (ToolBench's default, truncate) keeps the body
    assert json.loads(asyncio.run(e.step("search_for_demo", '{"q": "a"}')).observation)["response"] == body


def test_toolbench_checks_nothing_but_json_and_cuts_twice():
    e, ex = env("é" * 3000)
    step = asyncio.run(e.step("for_demo", '{"wrong": 1}'))  # endswith match; no schema check
    assert step.status_code == 0 and ex.calls == [{"wrong": 1}]
    assert step.observation.endswith("...") and len(step.observation) == 1024 + 3 and "\\u00e9" in step.observation
    assert asyncio.run(e.step("Finish", '{"return_type": "give_answer", "final_answer": ""}')).status_code == 3
    assert asyncio.run(e.step("Finish", '{"return_type": "give_answer"}')).observation == \
        '{error:"must have "final_answer""}'
