import json
import shutil
from pathlib import Path

import pytest

from toolweave.toolsets import import_paths, toolbench_api_list
from toolweave.toolsets.toolbench import (DUPLICATES_X, TEMPLATE_X, TYPE_X, build_tools, read_query_file,
                                          template_schema, type_schema)

DATA = Path(__file__).parents[2] / "data"
STB_G1 = DATA / "stabletoolbench/solvable_queries/G1_instruction.json"
TB_QUERIES = DATA / "toolbench/data_example/instruction"
RESPONSE_EXAMPLES = DATA / "toolbench/data_example/toolenv/response_examples"
TOOLENV = Path(__file__).parent / "fixtures/toolenv/tools"


@pytest.fixture(scope="module")
def g1():
    return import_paths([STB_G1])


def test_stabletoolbench_g1_counts(g1):
    queries = json.loads(STB_G1.read_text())
    assert len(queries) == 163
    assert g1.summary["tools"] == 154 and len(g1.tools) == 154
    assert g1.summary["functions"] == 820
    assert g1.rejects == []
    assert len({t.id for t in g1.tools}) == 154
    assert all(t.source == "toolbench" and t.category for t in g1.tools)


def test_one_name_in_three_categories_gets_three_ids(g1):
    demo = sorted((t.category, t.id) for t in g1.tools if t.name == "👋 Demo Project")
    assert demo == [("Events", "demo_project_events"), ("Media", "demo_project_media"),
                    ("Sports", "demo_project_sports")]


def test_every_query_api_is_a_function_with_its_parameters(g1):
    by_key = {(t.category, t.name): t for t in g1.tools}
    for q in json.loads(STB_G1.read_text()):
        for api in q["api_list"]:
            fn = by_key[(api["category_name"], api["tool_name"])].function(api["api_name"])
            assert fn is not None, api["api_name"]
            assert fn.required == [p["name"] for p in api["required_parameters"]]
            assert fn.method == api["method"]


def test_round_trip_to_api_list_on_real_files(g1):
    by_key = {(t.category, t.name): t for t in g1.tools}
    for path in [STB_G1, *sorted(TB_QUERIES.glob("G*_query.json"))]:
        tools = by_key if path == STB_G1 else {(t.category, t.name): t for t in import_paths([path]).tools}
        for q in json.loads(path.read_text()):
            for api in q["api_list"]:
                back = {e["api_name"]: e for e in toolbench_api_list(tools[(api["category_name"], api["tool_name"])])}
                assert back[api["api_name"]] == api


def test_repeated_parameter_names_are_kept_not_rejected(g1):
    fn = next(t for t in g1.tools if t.name == "Reqres - dont change!").function("User by id")
    assert list(fn.parameters["properties"]) == ["id", "array[]"]
    assert fn.parameters[DUPLICATES_X][0]["parameter"]["default"] == "2"


def test_parameter_types_map_to_json_schema():
    assert type_schema("STRING") == {"type": "string"}
    assert type_schema("NUMBER") == {"type": "number"}
    assert type_schema("BOOLEAN") == {"type": "boolean"}
    assert type_schema("ARRAY") == {"type": "array"}
    assert type_schema("OBJECT") == {"type": "object"}
    assert type_schema("DATE (YYYY-MM-DD)") == {"type": "string", "format": "date"}
    assert type_schema("TIME (24-hour HH:MM)") == {"type": "string", "format": "time"}
    assert type_schema("ENUM") == {"type": "string", TYPE_X: "ENUM"}
    assert type_schema("string") == {"type": "string", TYPE_X: "string"}
    assert type_schema("GEOPOINT (latitude, longitude)")["type"] == "string"


def test_template_response_becomes_a_schema():
    t = {"data": [{"id": "int", "_list_length": 2}], "ok": "bool", "tags": "list of str with length 8"}
    assert template_schema(t) == {"type": "object", "properties": {
        "data": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}},
        "ok": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}}}


def test_apis_union_across_query_files_and_name_only_entries():
    result = import_paths([TB_QUERIES])
    assert result.summary["formats"] == {"toolbench": 5}
    # G1..G3 list overlapping subsets of the same tools' APIs: one tool each, the union of APIs
    names = [t.name for t in result.tools]
    assert len(names) == len(set(names)) == 8
    # inference_query_demo.json names three APIs of a tool documented nowhere in the import
    assert len(result.rejects) == 3
    assert all("inference_query_demo.json: query 0 (query_id 82217) api_list[" in r.reason
               and "only names and no documentation" in r.reason for r in result.rejects)


def test_bad_api_entries_are_rejected_one_by_one(tmp_path):
    queries = json.loads((TB_QUERIES / "G1_query.json").read_text())
    good = queries[0]["api_list"][0]
    queries[0]["api_list"][1] = {**queries[0]["api_list"][1], "tool_name": ""}
    queries[1]["api_list"][0] = {**queries[1]["api_list"][0], "required_parameters": [{"type": "STRING"}]}
    conflicting = {**good, "api_description": "something else entirely"}
    queries[2]["api_list"].append(conflicting)
    records, rejects = read_query_file(queries, "G1_query.json")
    tools, build_rejects = build_tools(records)
    reasons = [r.reason for r in rejects + build_rejects]
    assert len(reasons) == 3
    assert "query 0 (query_id" in reasons[0] and "api_list[1]: missing or empty tool_name" in reasons[0]
    assert "query 1 (query_id" in reasons[1] and "required_parameters[0] has no name" in reasons[1]
    assert f"api {good['api_name']!r}" in reasons[2] and "differs in description" in reasons[2]
    tool = next(t for t in tools if t.name == good["tool_name"])
    assert tool.function(good["api_name"]).description == good["api_description"]  # the first one kept


def test_toolenv_tools_and_response_examples():
    result = import_paths([TOOLENV, RESPONSE_EXAMPLES])
    tools = {t.id: t for t in result.tools}
    assert set(tools) == {"abuse_ip_check", "privatepublicapi"}
    abuse = tools["abuse_ip_check"]
    assert abuse.category == "Business" and abuse.base_url == "https://abuse-ip-check.p.rapidapi.com"
    check = abuse.function("CHECK Endpoint")
    assert check.path == "/api/v2/check" and check.method == "GET"
    props = check.parameters["properties"]
    assert props["since"] == {"type": "string", "format": "date", "description": "reports since", "default": ""}
    assert props["verbose"]["type"] == "boolean" and props["tags"]["type"] == "array"
    assert json.loads(check.response_examples[0])["data"]["abuseConfidenceScore"] == 100
    # response examples attached to the matching functions
    assert check.response_schema["properties"]["data"]["properties"]["isPublic"] == {"type": "boolean"}
    assert TEMPLATE_X in check.response_schema
    pets = tools["privatepublicapi"]
    assert pets.function("getInventory").response_schema["properties"]["available"] == {"type": "integer"}
    assert pets.function("logoutUser").response_schema is None
    # the empty upstream file is a note, not an error; files for tools not imported are rejects
    assert any("acrosuite_oauther.json: empty response example file" in n for n in result.summary["notes"])
    reasons = [r.reason for r in result.rejects]
    assert any("privatepublicapi.json: api_list[5]: missing or empty name" in r for r in reasons)
    unmatched = [r for r in reasons if "no imported ToolBench tool" in r]
    assert len(unmatched) == 6 and not any("acrosuite" in r or "abuse_ip_check" in r for r in unmatched)
    assert len(reasons) == 7


def test_toolenv_round_trip(tmp_path):
    tool = next(t for t in import_paths([TOOLENV]).tools if t.id == "abuse_ip_check")
    original = json.loads((TOOLENV / "Business/abuse_ip_check.json").read_text())["api_list"]
    assert toolbench_api_list(tool, shape="toolenv") == original


def test_response_example_for_unknown_function_is_rejected(tmp_path):
    shutil.copytree(TOOLENV, tmp_path / "tools")
    ex = tmp_path / "response_examples/Business"
    ex.mkdir(parents=True)
    (ex / "abuse_ip_check.json").write_text(json.dumps({"api_list": [{"name": "Nope", "schema": {"a": "str"}}]}))
    result = import_paths([tmp_path])
    assert [r.reason for r in result.rejects if "Nope" in r.reason] == [
        f"{ex / 'abuse_ip_check.json'}: api_list[0]: response example 'Nope' names no function of tool "
        "'abuse_ip_check'"]
