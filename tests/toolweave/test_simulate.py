import asyncio
import json
from pathlib import Path

import pytest

from toolweave.config import EndpointConfig, SimulateConfig
from toolweave.executors import Observation
from toolweave.llm.types import LLMError
from toolweave.schemas import Episode, Instruction
from toolweave.solving.simulate import asks_user, simulate_episode
from toolweave.testing.fake_llm import FakeChatModel, tool_call
from toolweave.toolsets.export import openai_tools
from toolweave.toolsets.toolalpaca import import_toolalpaca

DATA = Path(__file__).parents[1] / "data" / "toolalpaca" / "eval_simulated.json"


@pytest.fixture(scope="module")
def axolotl():
    return next(t for t in import_toolalpaca(json.loads(DATA.read_text()), DATA.name).tools if t.name == "Axolotl")


@pytest.fixture(scope="module")
def names(axolotl):
    """Exported function name by the function's own name (what the assistant must call)."""
    _, mapping = openai_tools([axolotl], naming="plain")
    return {fname: exported for exported, (_, fname) in mapping.items()}


class RecordingExecutor:
    """Answers every call with a fixed body and remembers the calls."""

    def __init__(self):
        self.calls = []

    async def execute(self, tool, function, arguments):
        self.calls.append((tool.id, function.name, arguments))
        return Observation(status_code=200, body=json.dumps({"facts": ["Axolotls live in Lake Xochimilco."]}))


INSTRUCTION = Instruction(id="inst-1", text="Tell me some facts about axolotls for my project.",
                          tool_ids=["axolotl"], hidden_details="I need exactly 2 facts about their habitat.")


def run(instruction, tools, assistant, user, cfg, executor=None):
    executor = executor or RecordingExecutor()
    ep = asyncio.run(simulate_episode(instruction, tools, assistant=assistant, user=user, executor=executor, cfg=cfg,
                                      stage="simulate"))
    assert Episode.from_row(ep.to_row()) == ep  # always a valid record
    return ep, executor


def test_react_clarifying_question_is_answered_from_hidden_details(axolotl, names):
    facts = names["getAxolotlFacts"]
    assistant = FakeChatModel([
        "Thought: I should ask what kind of facts.\nFinal Answer: Which topic and how many facts would you like?",
        f"Thought: Look up habitat facts.\nAction: {facts}\nAction Input: {{\"category\": \"habitat\", \"limit\": 2}}",
        "Thought: I now know the final answer.\nFinal Answer: Axolotls live in Lake Xochimilco.",
    ])
    user = FakeChatModel(handler=lambda req: "[User]: Two facts about their habitat, please."
                         if "exactly 2 facts" in req["messages"][0]["content"] else "I don't know")
    ep, executor = run(INSTRUCTION, [axolotl], assistant, user, SimulateConfig(protocol="react"))

    assert ep.status == "answered" and ep.final_answer == "Axolotls live in Lake Xochimilco."
    assert ep.method == "simulate_react" and ep.instruction_id == "inst-1"
    assert [m["role"] for m in ep.messages] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    assert ep.messages[3]["content"] == "Two facts about their habitat, please."  # the [User]: prefix is gone
    call = ep.messages[4]["tool_calls"][0]
    assert call["function"]["name"] == facts
    assert json.loads(call["function"]["arguments"]) == {"category": "habitat", "limit": 2}
    assert ep.messages[5]["tool_call_id"] == call["id"] and "Xochimilco" in ep.messages[5]["content"]
    assert executor.calls == [("axolotl", "getAxolotlFacts", {"category": "habitat", "limit": 2})]
    # the user's answer reached the assistant, the observation too, as ReAct text
    third = assistant.requests[2]["messages"]
    assert any(m["content"] == "Two facts about their habitat, please." for m in third)
    assert third[-1]["content"].startswith("Observation:") and "Xochimilco" in third[-1]["content"]
    assert assistant.requests[0]["tag"].episode == ep.id
    assert {r["tag"].stage for r in assistant.requests + user.requests} == {"simulate"}  # the worker's stage
    # raw ReAct text kept for the ToolAlpaca format; accounting sums every agent's calls
    assert [r["raw"] for r in ep.extra["react"]][1].startswith("Thought: Look up habitat facts.")
    assert ep.extra["user_turns"] == 1
    assert ep.llm_calls == 4
    assert ep.prompt_tokens > 0 and ep.completion_tokens > 0
    assert ep.extra["usage"]["user"]["calls"] == 1


def test_react_malformed_turns_are_recorded_and_max_steps_forces_an_answer(axolotl, names):
    facts = names["getAxolotlFacts"]
    assistant = FakeChatModel([
        "I am not sure what to do here",  # neither action nor answer
        f"Thought: try\nAction: {facts}\nAction Input: {{\"category\": \"habits\"}}",
        "Final Answer: " + "this reply is too late, the step budget is spent",
    ])
    cfg = SimulateConfig(protocol="react", max_steps=2)
    ep, executor = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), cfg)

    assert ep.status == "max_steps"
    assert ep.final_answer == "this reply is too late, the step budget is spent"
    kinds = [(s["kind"], s["status"]) for s in ep.extra["steps"]]
    assert kinds[0] == ("parse_error", "parse_error") and kinds[1][0] == "tool_call"
    assert any("unparseable" in e for e in ep.errors)
    # the forced turn was told to answer now
    assert "Do not call any more functions" in assistant.requests[2]["messages"][-1]["content"]
    assert len(executor.calls) == 1
    # the garbage turn stays out of the canonical messages
    assert all("not sure what to do" not in (m.get("content") or "") for m in ep.messages)


def test_react_bad_arguments_become_an_error_observation(axolotl, names):
    search = names["searchAxolotlImages"]
    assistant = FakeChatModel([
        f"Thought: search\nAction: {search}\nAction Input: [[[",
        "Thought: ok\nFinal Answer: I could not search.",
    ])
    ep, executor = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), SimulateConfig())
    assert ep.status == "answered" and executor.calls == []
    step = ep.extra["steps"][0]
    assert step["status"] == "invalid_arguments" and "Invalid arguments" in step["observation"]
    assert ep.messages[-2]["role"] == "tool" and "Invalid arguments" in ep.messages[-2]["content"]
    assert any("invalid_arguments" in e for e in ep.errors)


def test_unknown_function_and_schema_violations_are_observations(axolotl, names):
    facts = names["getAxolotlFacts"]
    assistant = FakeChatModel([
        "Thought: a\nAction: getAxolotlRecipes\nAction Input: {}",
        f"Thought: b\nAction: {facts}\nAction Input: {{\"limit\": \"many\"}}",
        "Thought: c\nFinal Answer: Sorry, I could not get facts.",
    ])
    ep, executor = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), SimulateConfig())
    assert [s["status"] for s in ep.extra["steps"]] == ["hallucinated_function", "invalid_arguments"]
    assert executor.calls == [] and ep.status == "answered"


def test_finish_call_ends_the_episode(axolotl):
    assistant = FakeChatModel([{"content": "", "tool_calls": [
        tool_call("Finish", {"return_type": "give_answer", "final_answer": "Axolotls are salamanders."})]}])
    ep, _ = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), SimulateConfig(protocol="function_calling"))
    assert ep.status == "answered" and ep.final_answer == "Axolotls are salamanders."
    assert all(t["function"]["name"] != "Finish" for t in ep.tools)


def test_function_calling_protocol(axolotl, names):
    random_image, facts = names["getRandomAxolotlImage"], names["getAxolotlFacts"]
    assistant = FakeChatModel([
        {"content": None, "tool_calls": [tool_call(random_image, {}, "x1"),
                                         tool_call(facts, '{"category": "habitat"}', "x2")]},
        "Here is a picture and a fact: axolotls live in Lake Xochimilco.",
    ])
    ep, executor = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), SimulateConfig(protocol="function_calling"))

    assert ep.method == "simulate_fc" and ep.status == "answered"
    assert ep.final_answer.startswith("Here is a picture")
    assert [m["role"] for m in ep.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    ids = [c["id"] for c in ep.messages[2]["tool_calls"]]
    assert [m["tool_call_id"] for m in ep.messages[3:5]] == ids and len(set(ids)) == 2
    assert [c[1] for c in executor.calls] == ["getRandomAxolotlImage", "getAxolotlFacts"]
    first = assistant.requests[0]
    assert first["tool_choice"] == "auto" and {t["function"]["name"] for t in first["tools"]} == set(names.values())
    # the second request carries the calls with the model's own ids and their results
    second = assistant.requests[1]["messages"]
    assert [m.get("tool_call_id") for m in second if m["role"] == "tool"] == ["x1", "x2"]
    assert ep.tools == first["tools"]


def test_function_calling_max_steps_forces_tool_choice_none(axolotl, names):
    facts = names["getAxolotlFacts"]
    assistant = FakeChatModel([{"content": "", "tool_calls": [tool_call(facts, {"limit": 1})]}] * 2
                              + ["Axolotls are amphibians."])
    ep, _ = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]),
                SimulateConfig(protocol="function_calling", max_steps=2))
    assert ep.status == "max_steps" and ep.final_answer == "Axolotls are amphibians."
    assert assistant.requests[-1]["tool_choice"] == "none"


def test_assistant_failure_ends_the_episode_with_status_error(axolotl):
    class Down:
        async def chat(self, *a, **k):
            raise LLMError("endpoint down after 5 attempts")

    ep, _ = run(INSTRUCTION, [axolotl], Down(), FakeChatModel([]), SimulateConfig())
    assert ep.status == "error" and "endpoint down" in ep.errors[0]


def test_a_failing_executor_llm_fails_the_episode_instead_of_answering_the_tool_call(axolotl, names):
    from toolweave.executors import ExecutorUnavailable, LLMSimulatedExecutor, MemoryResponseCache

    class Down:
        async def chat(self, *a, **k):
            raise LLMError("executor endpoint down after 4 attempts")

    assistant = FakeChatModel([{"content": None, "tool_calls": [tool_call(names["getAxolotlFacts"], {})]},
                               "Axolotls live in lakes."])
    executor = LLMSimulatedExecutor(Down(), MemoryResponseCache())
    # an observation would teach the model to answer an outage; the runner records the error instead
    with pytest.raises(ExecutorUnavailable, match="executor endpoint down"):
        run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), SimulateConfig(protocol="function_calling"),
            executor=executor)
    assert len(assistant.requests) == 1


def test_user_agent_done_ends_the_episode(axolotl):
    assistant = FakeChatModel(["Final Answer: Axolotls are salamanders. Anything else?"])
    user = FakeChatModel(["[DONE]"])
    ep, _ = run(INSTRUCTION, [axolotl], assistant, user, SimulateConfig())
    assert ep.status == "answered" and ep.extra["user_turns"] == 0 and len(user.requests) == 1


@pytest.mark.parametrize("text, asks", [("Which city do you mean?", True), ("Could you tell me your user ID.", True),
                                        ("Axolotls live in Mexico.", False), ("", False)])
def test_asks_user(text, asks):
    assert asks_user(text) is asks


def test_simulation_through_the_scripted_http_server(axolotl, names, scripted_server):
    from toolweave.llm.client import LLMClient

    facts = names["getAxolotlFacts"]
    srv = scripted_server(replies=[
        f"Thought: get facts\nAction: {facts}\nAction Input: {{\"category\": \"habitat\", \"limit\": 1}}",
        "Thought: done\nFinal Answer: They live in Lake Xochimilco.",
    ])
    client = LLMClient(EndpointConfig(base_url=srv.base_url, model="scripted", max_retries=1))
    ep, executor = run(INSTRUCTION, [axolotl], client, FakeChatModel([]), SimulateConfig(protocol="react"))
    assert ep.status == "answered" and ep.final_answer == "They live in Lake Xochimilco."
    assert executor.calls == [("axolotl", "getAxolotlFacts", {"category": "habitat", "limit": 1})]
    assert ep.llm_calls == 2 and ep.prompt_tokens > 0
    assert srv.requests[0]["stop"] and "Observation:" in srv.requests[0]["stop"][0]


@pytest.mark.integration
@pytest.mark.slow
def test_end_to_end_with_the_embedded_engine(embedded_base_url, axolotl):
    """A real catalogue entry through build_tool (a Reject with reasons is a valid outcome for a
    135M model), then a real ToolAlpaca tool through instructions and simulation: valid records."""
    import random

    from toolweave.authoring.build_toolset import build_tool
    from toolweave.config import EmbeddedEngineConfig, ExecutorConfig, InstructionsConfig, ToolsetsConfig
    from toolweave.executors import make_executor
    from toolweave.authoring.instructions import toolalpaca_instructions
    from toolweave.llm.client import LLMClient
    from toolweave.schemas import CatalogueEntry, Reject, Tool

    client = LLMClient(EndpointConfig(base_url=embedded_base_url, model=EmbeddedEngineConfig().served_name),
                       default_max_tokens=192)  # keeps the CPU engine run to minutes
    catalogue = json.loads((DATA.parent / "public_apis.json").read_text())["entries"]
    e = next(x for x in catalogue if x["API"] == "Cat Facts")
    entry = CatalogueEntry(id="cat-facts", name=e["API"], description=e["Description"], category=e["Category"],
                           link=e["Link"])
    built = asyncio.run(build_tool(entry, client, ToolsetsConfig(max_attempts=2, max_tokens=256),
                                   stage="build_toolset"))
    assert isinstance(built, Tool | Reject)
    if isinstance(built, Reject):
        assert "Cat Facts" in built.reason and "attempt 2:" in built.reason
    else:
        assert built.functions and built.nl_documentation and len(built.extra["attempts"]) <= 2
    type(built).from_row(built.to_row())

    out = asyncio.run(toolalpaca_instructions(axolotl, client, InstructionsConfig(per_tool=2), rng=random.Random(0),
                                              stage="instructions"))
    assert out and all(isinstance(o, Instruction | Reject) for o in out)
    instrs = [o for o in out if isinstance(o, Instruction)] or [INSTRUCTION]  # a 135M model may write none

    executor = make_executor(ExecutorConfig(kind="mock"))
    for protocol in ("react", "function_calling"):
        ep, _ = run(instrs[0], [axolotl], client, client, SimulateConfig(protocol=protocol, max_steps=1),
                    executor=executor)
        assert ep.status in ("answered", "max_steps") and ep.llm_calls >= 1 and ep.completion_tokens > 0
        assert ep.messages[1]["content"] == instrs[0].text


def test_react_arguments_that_are_no_json_are_a_step_error_not_an_episode_failure(axolotl, names):
    search = names["searchAxolotlImages"]
    assistant = FakeChatModel([
        f"Thought: search\nAction: {search}\nAction Input: {{'ids': {{1, 2}}}}",  # a Python set
        "Thought: ok\nFinal Answer: I could not search.",
    ])
    ep, executor = run(INSTRUCTION, [axolotl], assistant, FakeChatModel([]), SimulateConfig())
    assert ep.status == "answered" and executor.calls == []
    step = ep.extra["steps"][0]
    assert step["status"] == "invalid_arguments" and "JSON-representable" in step["observation"]
