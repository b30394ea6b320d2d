import json
from pathlib import Path

from toolweave.toolsets import import_paths
from toolweave.toolsets.toolalpaca import import_toolalpaca

EVAL = Path(__file__).parents[2] / "data/toolalpaca/eval_simulated.json"


def test_every_eval_simulated_tool_imports():
    raw = json.loads(EVAL.read_text())
    result = import_paths([EVAL])
    assert result.rejects == []
    assert (result.summary["tools"], result.summary["functions"]) == (10, 54)
    by_name = {t.name: t for t in result.tools}
    for item in raw:
        tool = by_name[item["Name"]]
        assert tool.source == "toolalpaca" and tool.category == item["Category"]
        assert tool.nl_documentation == item["NLDocumentation"]
        assert tool.openapi == json.loads(item["Documentation"])
        for key in ("Function_Projection", "Golden_Answers", "Instructions", "Function_Description", "Introduction"):
            assert tool.extra[key] == item[key]
        # functions carry the projection's names, routes and methods
        assert {f.name: [f.path, f.method.lower()] for f in tool.functions} == item["Function_Projection"]
        # every golden action names a function of the tool (getDetails is ToolAlpaca's "ask the user")
        actions = {a["Action"].removeprefix("[Optional]") for answer in item["Golden_Answers"] for a in answer}
        assert actions - {"getDetails"} <= {f.name for f in tool.functions}


def test_refs_into_components_are_resolved():
    bible = next(t for t in import_paths([EVAL]).tools if t.name == "A Bíblia Digital")
    text = json.dumps([f.model_dump(mode="json") for f in bible.functions])
    assert "$ref" not in text and "x-recursive-ref" not in text


def test_bad_tools_are_rejected_one_each():
    raw = json.loads(EVAL.read_text())[:4]
    raw[0] = {**raw[0], "Documentation": "{not json"}
    doc = json.loads(raw[1]["Documentation"])
    doc["paths"]["/anime"] = {"get": {"responses": "nope"}}
    raw[1] = {**raw[1], "Documentation": json.dumps(doc)}
    raw[2] = {**raw[2], "Function_Projection": {**raw[2]["Function_Projection"], "ghost": ["/ghost", "get"]}}
    result = import_toolalpaca(raw, "eval.json")
    assert [t.name for t in result.tools] == [raw[3]["Name"]]
    reasons = [r.reason for r in result.rejects]
    assert reasons[0].startswith("eval.json: tool 0 ('Axolotl'): Documentation is not JSON (line 1 column 2")
    assert reasons[1].startswith("eval.json: tool 1 ('AniAPI'): Documentation: at /paths/~1anime/get/responses:")
    assert reasons[2] == ("eval.json: tool 2 ('AbuseIPDB'): Function_Projection names operations the "
                          "Documentation lacks: ghost")
