import json

import pytest
import yaml

from toolweave.toolsets import import_paths
from toolweave.toolsets.openapi import OpenAPIError, openapi_tool, validate_openapi

PETS = {
    "openapi": "3.1.0",
    "info": {"title": "Pet Store", "version": "1.0", "description": "Pets for sale"},
    "servers": [{"url": "https://{region}.pets.example/v1", "variables": {"region": {"default": "eu"}}}],
    "components": {
        "securitySchemes": {"key": {"type": "apiKey", "name": "X-Key", "in": "header"}},
        "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"},
                                 "description": "max items"}},
        "schemas": {
            "Pet": {"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "tag": {"type": "string"}}},
            "Node": {"type": "object", "properties": {"value": {"type": "string"},
                                                      "children": {"type": "array",
                                                                   "items": {"$ref": "#/components/schemas/Node"}}}},
        },
    },
    "paths": {
        "/pets": {
            "get": {"operationId": "listPets", "summary": "List pets",
                    "parameters": [{"$ref": "#/components/parameters/Limit"}],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {
                        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}},
                        "example": [{"name": "Rex"}]}}}}},
            "post": {"operationId": "createPet",
                     "parameters": [{"name": "dry_run", "in": "query", "schema": {"type": "boolean"}}],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Pet"}}}},
                     "responses": {"201": {"description": "created"}}},
        },
        "/pets/{petId}": {
            "parameters": [{"name": "petId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"description": "One pet",
                    "parameters": [{"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Node"},
                        "examples": {"a": {"value": {"value": "x", "children": []}}}}}}}},
        },
    },
}


def test_operations_become_functions_with_merged_parameters():
    tool = openapi_tool(PETS)
    assert (tool.id, tool.name, tool.description) == ("pet_store", "Pet Store", "Pets for sale")
    assert tool.base_url == "https://eu.pets.example/v1" and tool.auth == "apiKey"
    assert [f.name for f in tool.functions] == ["listPets", "createPet", "get_pets_petid"]
    listing, create, one = tool.functions
    assert listing.method == "GET" and listing.path == "/pets" and listing.description == "List pets"
    assert listing.parameters["properties"]["limit"] == {"type": "integer", "description": "max items",
                                                         "x-in": "query"}
    assert listing.response_schema["items"]["properties"]["name"] == {"type": "string"}  # $ref resolved
    assert json.loads(listing.response_examples[0]) == [{"name": "Rex"}]
    # query parameter + JSON body properties, body's required list applies (the body is required)
    assert set(create.parameters["properties"]) == {"dry_run", "name", "tag"}
    assert create.parameters["properties"]["name"]["x-in"] == "body"
    assert create.required == ["name"]
    # path-level + operation parameters; path parameters are always required
    assert one.required == ["petId"] and one.parameters["properties"]["X-Trace"]["x-in"] == "header"
    assert json.loads(one.response_examples[0]) == {"value": "x", "children": []}


def test_recursive_ref_is_expanded_once_and_stays_finite():
    one = openapi_tool(PETS).functions[2]
    items = one.response_schema["properties"]["children"]["items"]
    assert items == {"x-recursive-ref": "#/components/schemas/Node", "type": "object"}
    json.dumps(one.response_schema)  # no cycle left


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: (d.pop("paths"), d.__setitem__("openapi", "3.0.3")), "at /: 'paths' is a required property"),
    (lambda d: d["paths"]["/pets"]["get"]["parameters"].append({"$ref": "#/components/parameters/Nope"}),
     "at /paths/~1pets/get/parameters/1/$ref: $ref '#/components/parameters/Nope' points to nothing"),
    (lambda d: d["info"].__setitem__("title", 5), "at /info/title: 5 is not of type 'string'"),
    (lambda d: d["paths"]["/pets"]["get"].__setitem__("parameters", "limit"),
     "at /paths/~1pets/get/parameters: 'limit' is not of type 'array'"),
    (lambda d: d.__setitem__("openapi", "2.0"), "at /openapi: expected an OpenAPI 3.x version, got '2.0'"),
    (lambda d: d["paths"]["/pets"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
     .__setitem__("$ref", "https://evil.example/schema.json"), "remote $ref"),
])
def test_invalid_documents_name_pointer_and_reason(mutate, expected):
    doc = json.loads(json.dumps(PETS))
    mutate(doc)
    with pytest.raises(OpenAPIError) as e:
        validate_openapi(doc)
    assert expected in str(e.value)


def test_yaml_and_json_files_and_external_ref(tmp_path):
    doc = json.loads(json.dumps(PETS))
    doc["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {"$ref": "pet.yaml"}
    (tmp_path / "pet.yaml").write_text(yaml.safe_dump(PETS["components"]["schemas"]["Pet"]))
    (tmp_path / "store.yaml").write_text(yaml.safe_dump(doc))
    other = json.loads(json.dumps(PETS))
    other["info"]["title"] = "Other Store"
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = import_paths([tmp_path / "store.yaml", tmp_path / "other.json"])
    assert result.rejects == []
    assert {t.id for t in result.tools} == {"pet_store", "other_store"}
    create = next(t for t in result.tools if t.id == "pet_store").function("createPet")
    assert create.required == ["name"] and create.parameters["properties"]["tag"]["x-in"] == "body"


def test_broken_files_are_rejected_and_the_rest_imports(tmp_path):
    (tmp_path / "a_good.json").write_text(json.dumps(PETS))
    (tmp_path / "b_no_paths.json").write_text(json.dumps({k: v for k, v in PETS.items() if k != "paths"}))
    (tmp_path / "c_empty.yaml").write_text("")
    (tmp_path / "d_not_json.json").write_text("{'openapi': 3,")
    (tmp_path / "e_bad.yaml").write_text("openapi: 3.0.0\ninfo: [unclosed\n")
    (tmp_path / "f_list.yaml").write_text("- 1\n- 2\n")
    result = import_paths([tmp_path])
    assert [t.id for t in result.tools] == ["pet_store"]
    reasons = sorted(r.reason for r in result.rejects)
    assert len(reasons) == 5
    # 3.1 lets a document leave out paths; a tool without operations is still no tool
    assert reasons[0] == f"{tmp_path / 'b_no_paths.json'}: invalid OpenAPI document at /paths: the document defines no operations"
    assert reasons[1] == f"{tmp_path / 'c_empty.yaml'}: empty file"
    assert reasons[2].startswith(f"{tmp_path / 'd_not_json.json'}: invalid JSON at line 1 column 2")
    assert reasons[3].startswith(f"{tmp_path / 'e_bad.yaml'}: invalid YAML at line 3 column 1")
    assert reasons[4].startswith(f"{tmp_path / 'f_list.yaml'}: unrecognised format (a list of 2 items)")
    assert all(r.stage == "toolsets" and r.source for r in result.rejects)
