"""`sft.format: toolalpaca_v1` equals what ToolAlpaca's own build_dataset.py wrote for the same instances
(tests/data/reference/toolalpaca/build_dataset_golden.json, see SOURCES.md): kept examples text for
text and flag for flag, dropped instances (only getDetails, no steps, more than 5 steps) rejected."""
import json
from pathlib import Path

import pytest

from toolweave.schemas import Episode
from training.formats import RenderError
from training.toolalpaca_v1 import as_build_dataset, render_toolalpaca_v1

DATA = Path(__file__).parents[1] / "data"
GOLDEN = json.loads((DATA / "reference/toolalpaca/build_dataset_golden.json").read_text())
TOOL = next(t for t in json.loads((DATA / "toolalpaca/eval_simulated.json").read_text()) if t["Name"] == GOLDEN["tool"])


def docs() -> list[list[str]]:
    """What simulate records as `extra["toolalpaca_docs"]` for an imported ToolAlpaca tool."""
    from toolweave.solving.simulate import toolalpaca_docs
    from toolweave.toolsets.toolalpaca import import_toolalpaca
    return toolalpaca_docs(import_toolalpaca([TOOL], "eval.json").tools)


def episode(instance: dict) -> Episode:
    """The instance as toolweave's simulate records it: canonical messages, the ReAct text of the last turn."""
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": instance["input"]}]
    for k, ((name, tool_input, log), observation) in enumerate(instance["intermediate_steps"]):
        thought = log.split("\nAction:")[0].strip()
        call = {"id": f"call_{k}", "type": "function", "function": {"name": name, "arguments": tool_input}}
        msgs += [{"role": "assistant", "content": thought, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": f"call_{k}", "name": name, "content": observation}]
    msgs.append({"role": "assistant", "content": instance["output"]})
    final = f"{instance['Final Thought']}\nFinal Answer: " if "Final Thought" in instance else ""
    fns = [{"type": "function", "function": {"name": n, "description": "", "parameters": {}}}
           for n in TOOL["Function_Projection"]]
    return Episode(id=instance["name"], instruction_id="i", method="simulate_react", query=instance["input"],
                   status="answered", final_answer=instance["output"], messages=msgs, tools=fns,
                   extra={"react": [{"raw": final + instance["output"]}], "toolalpaca_docs": docs()})


def test_kept_instances_equal_build_dataset_output():
    kept = []
    for instance in GOLDEN["instances"]:
        try:
            kept.append(as_build_dataset(render_toolalpaca_v1(episode(instance))))
        except RenderError:
            continue
    assert len(kept) == len(GOLDEN["build_dataset"]) == 3
    for mine, theirs in zip(kept, GOLDEN["build_dataset"]):
        assert mine == theirs


@pytest.mark.parametrize("name,reason", [("only_get_details", "only getDetails"), ("no_steps", "no tool call"),
                                         ("six_steps", "6 steps > 5")])
def test_dropped_instances_are_rejected_with_the_reason(name, reason):
    instance = next(i for i in GOLDEN["instances"] if i["name"] == name)
    with pytest.raises(RenderError, match=reason):
        render_toolalpaca_v1(episode(instance))


def test_simulated_episode_renders_as_build_dataset_does():
    """The golden's kept instance replayed through toolweave's simulate (getDetails answered by the user
    agent, observations in ToolAlpaca's form from the executor's status and body) renders to the text
    and flags ToolAlpaca's build_dataset.py wrote for it."""
    import asyncio

    from toolweave.config import ExecutorConfig, SimulateConfig
    from toolweave.executors import Observation
    from toolweave.schemas import Instruction
    from toolweave.solving.simulate import simulate_episode
    from toolweave.testing.fake_llm import FakeChatModel
    from toolweave.toolsets.toolalpaca import import_toolalpaca

    instance = GOLDEN["instances"][0]
    steps = instance["intermediate_steps"]
    bodies = iter([(200, steps[1][1].split("Response: ", 1)[1]), (404, '{"error": "not found"}')])

    class Executor:
        async def execute(self, tool, function, arguments):
            code, body = next(bodies)
            return Observation(status_code=code, body=body)

    replies = [f"Thought:{log}" for (_, _, log), _ in steps]
    replies.append(f"Thought: {instance['Final Thought']}\nFinal Answer: {instance['output']}")
    user_prompts = []

    def answer(req):
        user_prompts.append(req["messages"][0]["content"])
        return f"[User]: {steps[0][1]}"

    question, hint = instance["input"].split("\nHint: ")
    tools = import_toolalpaca([TOOL], "eval.json").tools
    ep = asyncio.run(simulate_episode(
        Instruction(id="i", text=question, tool_ids=[tools[0].id], hidden_details=hint), tools,
        assistant=FakeChatModel(replies), user=FakeChatModel(handler=answer), executor=Executor(),
        cfg=SimulateConfig(clarify="get_details", observation_format="toolalpaca", max_steps=15),
        env_cfg=ExecutorConfig(observation_limit=3000)))
    assert ep.status == "answered"
    assert user_prompts[0].endswith(f"[User]: {instance['input']}\n[AI]: {{'Question': "
                                    f"'Which color and size of axolotl do you want pictures of?'}}")
    assert as_build_dataset(render_toolalpaca_v1(ep)) == GOLDEN["build_dataset"][0]
