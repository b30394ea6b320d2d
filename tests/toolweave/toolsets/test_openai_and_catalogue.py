import json
from pathlib import Path

from toolweave.toolsets import import_paths
from toolweave.toolsets.catalogue import import_catalogue

PUBLIC_APIS = Path(__file__).parents[2] / "data/toolalpaca/public_apis.json"


def test_openai_tool_lists_bare_and_wrapped(tmp_path):
    wrapped = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                  "parameters": {"type": "object",
                                                                 "properties": {"city": {"type": "string"}},
                                                                 "required": ["city"]}}},
               {"type": "function", "function": {"name": "bad_schema", "parameters": {"type": "obj"}}},
               {"type": "retrieval"}]
    (tmp_path / "weather.json").write_text(json.dumps(wrapped))
    (tmp_path / "clock.yaml").write_text("- name: now\n  description: the time\n  parameters: {type: object}\n")
    result = import_paths([tmp_path])
    tools = {t.id: t for t in result.tools}
    assert set(tools) == {"weather", "clock"}
    assert tools["weather"].function("get_weather").required == ["city"]
    assert tools["clock"].function("now").description == "the time"
    reasons = sorted(r.reason for r in result.rejects)
    assert len(reasons) == 2
    assert "weather.json: tool 1 ('bad_schema'): parameters is not a valid JSON Schema (at /type)" in reasons[0]
    assert reasons[1] == f"{tmp_path / 'weather.json'}: tool 2: type 'retrieval' is not 'function'"


def test_public_apis_catalogue():
    doc = json.loads(PUBLIC_APIS.read_text())
    entries, rejects, stats = import_catalogue(doc, PUBLIC_APIS)
    assert rejects == [] and len(entries) == 1425
    assert len({e.id for e in entries}) == 1425
    axolotl = next(e for e in entries if e.name == "Axolotl")
    assert (axolotl.id, axolotl.category, axolotl.https, axolotl.cors) == ("axolotl", "Animals", True, "no")
    # different APIs that share a name keep both entries
    assert stats["renamed"] == 13
    dogs = [e for e in entries if e.name == "Dog Facts"]
    assert [e.id for e in dogs] == ["dog_facts", "dog_facts_2"] and dogs[0].link != dogs[1].link


def test_bad_catalogue_entries_are_rejected():
    doc = {"count": 4, "entries": [
        {"API": "Good", "Description": "d", "Auth": "", "HTTPS": True, "Cors": "no", "Link": "l", "Category": "c"},
        {"API": "", "Description": "no name"},
        {"API": "Typed", "Description": "d", "HTTPS": "sometimes"},
        {"API": "Good", "Description": "d", "Auth": "", "HTTPS": True, "Cors": "no", "Link": "l", "Category": "c"},
    ]}
    entries, rejects, stats = import_catalogue(doc, "apis.json")
    assert [e.id for e in entries] == ["good"] and stats["merged"] == 1
    assert [r.reason for r in rejects] == [
        "apis.json: entry 1: no API name",
        "apis.json: entry 2 ('Typed'): HTTPS: Input should be a valid boolean, unable to interpret input",
    ]
