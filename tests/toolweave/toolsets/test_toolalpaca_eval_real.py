"""ToolAlpaca's real-API evaluation set imports whole: its hand-written documents' misnesting is
repaired, each repair named on the tool; a repair that would overwrite something is left to the
validator, which names where."""
import json
from pathlib import Path

import pytest

from toolweave.toolsets import import_paths
from toolweave.toolsets.openapi import OpenAPIError, openapi_tool
from toolweave.toolsets.openapi_repair import repair_openapi

EVAL_REAL = Path(__file__).parents[2] / "data/toolalpaca/eval_real.json"
NESTED = ("/preferred-routes/search", "/vatsim/pilots", "/vatsim/controllers", "/weather/metar", "/weather/taf")


def test_all_eleven_eval_real_tools_import_with_their_projection():
    raw = json.loads(EVAL_REAL.read_text())
    result = import_paths([EVAL_REAL])
    assert result.rejects == []
    assert sorted(t.name for t in result.tools) == sorted(item["Name"] for item in raw) and len(raw) == 11
    by_name = {t.name: t for t in result.tools}
    for item in raw:
        routes = {f.name: [f.path, f.method.lower()] for f in by_name[item["Name"]].functions}
        # Fruityvice's paths lack their leading '/' in the document and the projection alike (repaired)
        expected = {k: ["/" + path.lstrip("/"), method] for k, (path, method) in item["Function_Projection"].items()}
        assert {k: routes[k] for k in expected} == expected


def test_aviationapi_nested_paths_and_components_are_lifted_and_named():
    tool = next(t for t in import_paths([EVAL_REAL]).tools if t.name == "AviationAPI")
    assert tool.extra["repairs"] == [
        "at /paths/components: 'components' inside paths; moved to the document root",
        *(f"at /paths/~1preferred-routes/{p[1:].replace('/', '~1').join(['~1', ''])}: path nested inside the "
          f"path item '/preferred-routes'; moved to paths" for p in NESTED)]
    assert {f.path for f in tool.functions} >= set(NESTED) and len(tool.functions) == 10
    # the responses' refs to #/components/schemas/error now resolve: no stand-in schema was needed
    assert tool.openapi["components"]["schemas"]["error"]["type"] == "object"
    assert not any("points to nothing" in r for r in tool.extra["repairs"])
    metar = next(f for f in tool.functions if f.path == "/weather/metar")
    assert "apt" in metar.parameters["properties"]


def test_random_useless_facts_root_parameters_move_to_components():
    tool = next(t for t in import_paths([EVAL_REAL]).tools if t.name == "Random Useless Facts")
    assert tool.extra["repairs"] == ["at /parameters: parameters at the document root; moved to "
                                     "/components/parameters"]
    assert "parameters" not in tool.openapi
    assert tool.openapi["components"]["parameters"]["LanguageQueryParam"]["name"] == "language"
    assert tool.openapi["components"]["headers"]  # what components held before stays


def _doc(**extra) -> dict:
    return {"openapi": "3.0.0", "info": {"title": "T", "version": "1"},
            "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}, **extra}


def test_swagger2_definitions_move_and_their_refs_follow():
    doc = _doc(definitions={"Pet": {"type": "object", "properties": {"id": {"type": "integer"}}}})
    doc["paths"]["/a"]["get"]["responses"]["200"]["content"] = {
        "application/json": {"schema": {"$ref": "#/definitions/Pet"}}}
    fixed, repairs = repair_openapi(doc)
    assert repairs == ["at /definitions: definitions at the document root; moved to /components/schemas "
                       "(1 $ref(s) rewritten)"]
    assert fixed["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Pet"}
    assert "definitions" in doc  # the input is not changed
    assert openapi_tool(doc, lenient=True).extra["repairs"] == repairs


def test_a_nested_path_that_is_already_there_is_left_for_the_validator():
    doc = _doc()
    doc["paths"]["/b"] = {"get": {"responses": {"200": {"description": "b"}}}}
    doc["paths"]["/a"]["/b"] = {"get": {"responses": {"200": {"description": "other b"}}}}
    fixed, repairs = repair_openapi(doc)
    assert repairs == [] and fixed["paths"]["/a"]["/b"]["get"]["responses"]["200"]["description"] == "other b"
    with pytest.raises(OpenAPIError, match=r"at /paths/~1a: '/b' does not match"):
        openapi_tool(doc, lenient=True)


def test_root_components_that_clash_are_left_for_the_validator():
    param = {"name": "q", "in": "query", "schema": {"type": "string"}}
    doc = _doc(parameters={"Q": param}, components={"parameters": {"Q": dict(param, name="other")}})
    assert repair_openapi(doc)[1] == []
    with pytest.raises(OpenAPIError, match="'parameters' does not match"):
        openapi_tool(doc, lenient=True)


def test_paths_nested_two_deep_are_all_lifted():
    doc = _doc()
    doc["paths"]["/a"]["/b"] = {"get": {"responses": {"200": {"description": "b"}}},
                                "/c": {"get": {"responses": {"200": {"description": "c"}}}}}
    tool = openapi_tool(doc, lenient=True)
    assert sorted(f.path for f in tool.functions) == ["/a", "/b", "/c"]
    assert tool.extra["repairs"][1] == ("at /paths/~1a/~1b/~1c: path nested inside the path item '/b'; "
                                        "moved to paths")
