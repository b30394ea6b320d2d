import asyncio
import json
from pathlib import Path

import pytest

from toolweave.authoring.build_toolset import build_tool, extract_json, nl_documentation, split_introduction
from toolweave.config import ToolsetsConfig
from toolweave.llm.types import LLMError
from toolweave.schemas import CatalogueEntry, Reject, Tool
from toolweave.testing.fake_llm import FakeChatModel

DATA = Path(__file__).parents[1] / "data" / "toolalpaca"
TOOLALPACA = json.loads((DATA / "eval_simulated.json").read_text())
AXOLOTL = next(t for t in TOOLALPACA if t["Name"] == "Axolotl")
INTRO = f"Introduction: {AXOLOTL['Introduction']}\nFunctions:\n{AXOLOTL['Functions']}"


def catalogue_entry(name: str) -> CatalogueEntry:
    entries = json.loads((DATA / "public_apis.json").read_text())["entries"]
    e = next(x for x in entries if x["API"] == name)
    return CatalogueEntry(id=f"cat-{name}", name=e["API"], description=e["Description"], category=e["Category"],
                          auth=e["Auth"], link=e["Link"])


@pytest.mark.parametrize("tool", TOOLALPACA, ids=lambda t: t["Name"])
def test_nl_documentation_reproduces_toolalpaca(tool):
    text, per_function, projection = nl_documentation(json.loads(tool["Documentation"]))
    assert text == tool["NLDocumentation"]
    assert per_function == tool["Function_Description"]
    assert projection == tool["Function_Projection"]


@pytest.mark.parametrize("text", [
    '{"a": 1}',
    'Sure! Here is the document:\n```json\n{"a": 1}\n```\nHope it helps.',
    'The spec follows. {"a": 1} and some trailing words {',
    '```\n{"a": 1}\n```',
    '```json\n{"a": 1}\n',  # unclosed fence: the model stopped
])
def test_extract_json_from_messy_text(text):
    assert extract_json(text) == {"a": 1}


@pytest.mark.parametrize("text, why", [("", "empty"), ("no json here", "no complete JSON"),
                                       ('{"openapi": "3.0.0", "paths": {', "cut off")])
def test_extract_json_says_why_it_failed(text, why):
    with pytest.raises(ValueError, match=why):
        extract_json(text)


def test_split_introduction():
    intro, functions = split_introduction(INTRO)
    assert intro.startswith("The Axolotl API") and "Functions" not in intro
    assert functions.startswith("1. Name: getRandomAxolotlImage")
    assert split_introduction("Just prose.") == ("Just prose.", "")


def test_build_tool_retries_with_the_validator_error_then_succeeds():
    entry = catalogue_entry("Axolotl")
    broken = json.loads(AXOLOTL["Documentation"])
    del broken["info"]["version"]  # the validator's complaint must reach the model
    llm = FakeChatModel([INTRO, "I cannot write JSON, sorry.", f"```json\n{json.dumps(broken)}\n```",
                         "Fixed:\n" + AXOLOTL["Documentation"]])
    tool = asyncio.run(build_tool(entry, llm, ToolsetsConfig(), stage="build_toolset"))

    assert isinstance(tool, Tool), tool
    assert tool.id == "axolotl" and tool.name == "Axolotl" and tool.category == "Animals"
    assert [f.name for f in tool.functions] == ["getRandomAxolotlImage", "searchAxolotlImages", "getAxolotlFacts"]
    assert tool.nl_documentation == AXOLOTL["NLDocumentation"]
    assert tool.extra["Function_Projection"] == AXOLOTL["Function_Projection"]
    attempts = tool.extra["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert "no usable JSON" in attempts[0]["error"] and "version" in attempts[1]["error"]
    assert attempts[2]["error"] is None
    # the retry prompt carries the previous document and the validator's message
    retry = llm.requests[3]["messages"]
    assert retry[1]["role"] == "assistant" and '"Axolotl"' in retry[1]["content"]
    assert "version" in retry[2]["content"] and "is a required property" in retry[2]["content"]
    assert llm.requests[1]["response_format"] == {"type": "json_object"}
    assert Tool.from_row(tool.to_row()) == tool  # the record survives Parquet


def test_build_tool_gives_up_after_max_attempts():
    entry = catalogue_entry("Cat Facts")
    bad = ['{"openapi": "3.0.0"}', "nothing", '[1, 2]', '{"openapi": "2.0"}', '{"openapi": "3.0.0", "info": {}}',
           "never used"]
    llm = FakeChatModel([INTRO] + bad)
    out = asyncio.run(build_tool(entry, llm, ToolsetsConfig(max_attempts=5), stage="build_toolset_2"))
    assert isinstance(out, Reject)  # the worker's stage names the reject and accounts the calls
    assert out.stage == "build_toolset_2" and "Cat Facts" in out.reason and "after 5 attempts" in out.reason
    assert out.id.startswith("build_toolset_2:") and {r["tag"].stage for r in llm.requests} == {"build_toolset_2"}
    for n in range(1, 6):
        assert f"attempt {n}:" in out.reason
    assert "not a list" in out.reason
    assert len(llm.requests) == 6  # one introduction + five documents
    assert json.loads(out.record)["name"] == "Cat Facts"


def test_build_tool_rejects_when_the_llm_is_down():
    class Down:
        async def chat(self, *a, **k):
            raise LLMError("endpoint http://127.0.0.1:1/v1: 3 attempts, connection refused")

    out = asyncio.run(build_tool(catalogue_entry("Axolotl"), Down(), ToolsetsConfig(), stage="build_toolset"))
    assert isinstance(out, Reject) and "connection refused" in out.reason


def test_build_tool_counts_a_document_without_operations_as_an_attempt():
    empty = {"openapi": "3.0.0", "info": {"title": "Axolotl", "version": "1"}, "paths": {}}
    llm = FakeChatModel([INTRO, json.dumps(empty), AXOLOTL["Documentation"]])
    tool = asyncio.run(build_tool(catalogue_entry("Axolotl"), llm, ToolsetsConfig(), stage="build_toolset"))
    assert isinstance(tool, Tool)
    assert "no operations" in tool.extra["attempts"][0]["error"]


@pytest.mark.parametrize("tool", TOOLALPACA, ids=lambda t: t["Name"])
def test_every_toolalpaca_document_passes_the_check_with_its_function_names(tool):
    from toolweave.authoring.build_toolset import check_openapi

    entry = CatalogueEntry(id="x", name=tool["Name"], description=tool["Description"], category=tool["Category"])
    _, built = check_openapi("```json\n" + tool["Documentation"] + "\n```", entry)
    assert [f.name for f in built.functions] == list(tool["Function_Projection"])
    assert [(f.path, f.method.lower()) for f in built.functions] == [tuple(v) for v in tool["Function_Projection"].values()]
