import json
from pathlib import Path

import jsonschema
import pytest

from toolweave.schemas import Function, Tool
from toolweave.toolsets import finish_function, import_paths, openai_tools
from toolweave.toolsets.naming import function_name

DATA = Path(__file__).parents[2] / "data"


@pytest.fixture(scope="module")
def g1_tools():
    return import_paths([DATA / "stabletoolbench/solvable_queries/G1_instruction.json"]).tools


def test_toolbench_names_map_back_to_every_function(g1_tools):
    tools, mapping = openai_tools(g1_tools)
    assert len(tools) == len(mapping) == 820
    by_id = {t.id: t for t in g1_tools}
    for spec in tools:
        fn = spec["function"]
        assert spec["type"] == "function" and len(fn["name"]) <= 64
        tool_id, fname = mapping[fn["name"]]
        original = by_id[tool_id].function(fname)
        assert fn["name"].startswith(function_name(fname, by_id[tool_id].name)[: len(fn["name"]) - 3])
        assert fn["description"] == original.description
        jsonschema.validators.validator_for(fn["parameters"]).check_schema(fn["parameters"])
        assert "x-toolbench-type" not in json.dumps(fn["parameters"])
        assert set(fn["parameters"].get("required", [])) <= set(fn["parameters"]["properties"])


def test_x_annotations_dropped_but_property_names_kept():
    fn = Function(name="f", parameters={"type": "object", "x-toolbench-duplicates": [],
                                        "properties": {"x-api-key": {"type": "string", "x-in": "header"}},
                                        "required": ["x-api-key"]})
    tools, _ = openai_tools([Tool(id="t", name="t", functions=[fn])], naming="plain")
    assert tools[0]["function"]["parameters"] == {"type": "object", "properties": {"x-api-key": {"type": "string"}},
                                                  "required": ["x-api-key"]}


def test_colliding_names_are_made_unique():
    long_tool = "A" * 70
    tools = [Tool(id="a", name=long_tool, functions=[Function(name="search"), Function(name="Search!")]),
             Tool(id="b", name="b", functions=[Function(name="search")])]
    specs, mapping = openai_tools(tools)
    names = [s["function"]["name"] for s in specs]
    assert len(set(names)) == 3 and all(len(n) <= 64 for n in names)
    assert sorted(mapping.values()) == [("a", "Search!"), ("a", "search"), ("b", "search")]
    specs, mapping = openai_tools(tools, naming="plain")
    assert [s["function"]["name"] for s in specs] == ["search", "search_2", "search_3"]
    assert mapping["search_2"] == ("a", "Search!")


def test_finish_function_matches_toolbench():
    fn = finish_function()["function"]
    assert fn["name"] == "Finish" and fn["parameters"]["required"] == ["return_type"]
    assert fn["parameters"]["properties"]["return_type"]["enum"] == ["give_answer", "give_up_and_restart"]
    jsonschema.validate({"return_type": "give_answer", "final_answer": "42"}, fn["parameters"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"return_type": "maybe"}, fn["parameters"])
