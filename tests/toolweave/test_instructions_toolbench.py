"""ToolBench instruction generation under the `toolbench` preset (issue 13 item 6's small fixes)."""
import asyncio
import json
import logging
import random

from toolweave.config import InstructionsConfig, RunConfig
from toolweave.authoring.instructions import sample_api_groups, toolbench_instructions
from toolweave.presets import apply_preset
from toolweave.schemas import Function, Tool
from toolweave.testing.fake_llm import FakeChatModel


def tool(i, n=3):
    fns = [Function(name=f"Api{k}", description="D" * 400, parameters={
        "type": "object", "properties": {"q": {"type": "string", "description": "the query"}}, "required": ["q"]})
        for k in range(n)]
    return Tool(id=f"t{i}", name=f"T{i}", category="Cat", functions=fns)


SEEDS = [{"mode": m, "api_list": [], "query": f"seed {m} {k}", "related apis": []} for m in ("I1", "I2", "I3")
         for k in range(4)]


def preset():
    return RunConfig.model_validate(apply_preset({"preset": "toolbench"})).instructions


def test_preset_asks_10_with_own_mode_seeds_and_full_docs_and_drops_one_api_queries():
    cfg = preset()
    assert cfg.per_sample == 10
    samples = sample_api_groups([tool(1), tool(2)], cfg.model_copy(update={"modes": ["I1"]}), rng=random.Random(0))
    assert [len(s.tools[0].functions) for s in samples] == [3, 3]  # every tool, all its APIs
    reply = json.dumps({"queries": [{"query": "one api", "related apis": [["T1", "Api0"]]},
                                    {"query": "two apis", "related apis": [["T1", "Api0"], ["T1", "Api1"]]}]})
    llm = FakeChatModel([reply])
    out = asyncio.run(toolbench_instructions(samples[0], llm, SEEDS, cfg, rng=random.Random(0), stage="instructions"))
    assert [type(x).__name__ for x in out] == ["Reject", "Instruction"]
    prompt = llm.requests[0]["messages"][-1]["content"]
    assert "Write 10 diverse" in prompt and "D" * 400 in prompt  # whole descriptions, not 300 characters
    assert '"required_parameters": [{"name": "q"' in prompt
    assert "seed I1" in prompt and "seed I2" not in prompt and "seed I3" not in prompt


def test_i3_without_collections_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        samples = sample_api_groups([tool(1), tool(2)], InstructionsConfig(modes=["I3"]), rng=random.Random(0))
    assert samples == [] and "I3 needs instructions.collections" in caplog.text
