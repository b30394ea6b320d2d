"""The importer against hostile and careless input: every bad file is one named reject, the rest of the
folder is imported and written, nothing outside the document's folder is read, work is bounded; and the
lenient repair of real-world OpenAPI defects (tests/data/openapi_defects, derived from ToolAlpaca)."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ray_jobs.cli import main
from toolweave.io import read_records
from toolweave.schemas import Reject, Tool
from toolweave.toolsets import import_paths
from toolweave.toolsets.openapi import OpenAPIError, openapi_tool

DATA = Path(__file__).parents[2] / "data"
DEFECTS = DATA / "openapi_defects"
ORIGINALS = {t["Name"]: json.loads(t["Documentation"])
             for t in json.loads((DATA / "toolalpaca/eval_simulated.json").read_text())}


def minimal(title: str = "Good", **extra) -> dict:
    return {"openapi": "3.0.0", "info": {"title": title, "version": "1"},
            "paths": {"/a": {"get": {"responses": {"200": {"description": "ok", **extra}}}}}}


def with_schema(schema: dict, title: str = "Refs") -> dict:
    return minimal(title, content={"application/json": {"schema": schema}})


def laughs(levels: int = 9) -> str:
    lines = ["openapi: 3.0.0", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def fan_out(levels: int = 30) -> dict:
    schemas = {f"S{i}": {"type": "object", "properties": {
        "a": {"$ref": f"#/components/schemas/S{i + 1}"}, "b": {"$ref": f"#/components/schemas/S{i + 1}"}}}
        for i in range(levels)}
    schemas[f"S{levels}"] = {"type": "string"}
    return {**with_schema({"$ref": "#/components/schemas/S0"}, "Fan"), "components": {"schemas": schemas}}


HOSTILE = {
    "deep.json": "[" * 5000 + "]" * 5000,
    "deep_ok_parse.json": json.dumps(json.loads("[" * 500 + "]" * 500)),
    "bigint.json": '{"openapi": "3.0.0", "x": ' + "9" * 5000 + "}",
    "surrogate.json": json.dumps(minimal()).replace('"Good"', '"Bad \\ud800"'),
    "api_list_int.json": '{"api_list": 5}',
    "bad_url.json": json.dumps({**minimal("Url"), "servers": [{"url": "http://[::1"}]}),
    "laughs.yaml": laughs(),
    "fan_out.json": json.dumps(fan_out()),
    "yaml_set.yaml": "openapi: 3.0.0\nx: !!set {a, b}\n",
    "yaml_binary.yaml": "openapi: 3.0.0\nx: !!binary aGVsbG8=\n",
    "complex_key.yaml": "? [a, b]\n: 1\n",
}


def test_every_hostile_file_is_one_named_reject_and_the_rest_is_written(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name, text in HOSTILE.items():
        (src / name).write_text(text)
    (src / os.fsdecode(b"bad\xffname.json")).write_text(json.dumps(minimal("Name")))
    (src / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(minimal("Bom")).encode())
    (src / "date.yaml").write_text("openapi: 3.0.0\ninfo: {title: Dated, version: '1'}\npaths:\n  /a:\n    get:\n"
                                   "      parameters:\n        - {name: d, in: query, schema: {type: string, "
                                   "example: 2021-01-01}}\n      responses: {'200': {description: ok}}\n")
    (src / "good.json").write_text(json.dumps(minimal()))
    out = tmp_path / "toolsets"
    t = time.monotonic()
    assert main(["toolset", "import", str(src), "--out", str(out)]) == 1
    assert time.monotonic() - t < 20
    tools = {t.name: t for t in read_records(out, Tool)[0]}
    assert set(tools) == {"Good", "Bom", "Dated"}
    assert tools["Dated"].functions[0].parameters["properties"]["d"]["example"] == "2021-01-01"
    rejects = read_records(tmp_path / "toolsets_rejects", Reject)[0]
    by_file = {Path(r.source).name: r.reason for r in rejects}
    expected = {"deep.json": "nested too deeply", "deep_ok_parse.json": "nested deeper than 200",
                "bigint.json": "4300 digits", "surrogate.json": "lone surrogate",
                "api_list_int.json": "unrecognised format", "bad_url.json": "malformed URL",
                "laughs.yaml": "values (YAML aliases", "fan_out.json": "expands to over",
                "yaml_set.yaml": "a set value", "yaml_binary.yaml": "a bytes value",
                "complex_key.yaml": "unhashable key", "bad\\udcffname.json": "file name is not UTF-8"}
    for name, why in expected.items():
        assert why in by_file.get(name, ""), (name, by_file.get(name))
    assert len(rejects) == len(expected)
    assert capsys.readouterr().err.count("rejected: ") == len(expected)


def test_bom_and_yaml_dates_import_cleanly(tmp_path):
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfopenapi: 3.0.0\ninfo: {title: B, version: 2021-01-01}\n"
                                        b"paths: {/a: {get: {responses: {'200': {description: ok}}}}}\n")
    result = import_paths([tmp_path])
    assert result.rejects == [] and result.tools[0].openapi["info"]["version"] == "2021-01-01"


class _Counter(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        _Counter.hits += 1
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_refs_stay_inside_the_documents_folder_and_never_reach_the_network(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/s.json"
    outside = tmp_path / "secret.json"
    outside.write_text('{"type": "string", "description": "TOP-SECRET-CONTENT"}')
    folder = tmp_path / "tools"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "pet.json").write_text('{"type": "object"}')
    (folder / "sibling_remote.json").write_text(json.dumps({"type": "object", "properties": {"x": {"$ref": url}}}))
    (folder / "sibling_ftp.json").write_text(json.dumps({"$ref": "ftp://127.0.0.1/x.json"}))
    (folder / "link.json").symlink_to(outside)
    cases = {"parent": "../secret.json", "absolute": str(outside), "file_uri": outside.as_uri(),
             "etc": "/etc/passwd", "remote": url, "via_sibling": "sibling_remote.json",
             "via_sibling_ftp": "sibling_ftp.json", "symlink": "link.json", "not_data": "../../etc/hostname"}
    for name, ref in cases.items():
        (folder / f"{name}.json").write_text(json.dumps(with_schema({"$ref": ref}, name)))
    (folder / "ok.json").write_text(json.dumps(with_schema({"$ref": "sub/pet.json"}, "ok")))
    try:
        result = import_paths([folder])
    finally:
        server.shutdown()
        server.server_close()
    assert _Counter.hits == 0
    assert {t.name for t in result.tools} == {"ok"}
    by_file = {Path(r.source).stem: r.reason for r in result.rejects}
    for name in cases:
        assert "$ref" in by_file[name] or "refusing" in by_file[name], (name, by_file[name])
    assert "symbolic link leading out" in by_file["link"]
    assert all("TOP-SECRET" not in r.reason and "TOP-SECRET" not in r.record and "root:" not in r.reason
               for r in result.rejects)


def test_out_must_be_a_dataset_folder_of_its_own(tmp_path, capsys):
    (tmp_path / "good.json").write_text(json.dumps(minimal()))
    assert main(["toolset", "import", str(tmp_path / "good.json"), "--out", "/"]) == 2
    assert main(["toolset", "import", str(tmp_path / "good.json"), "--out", str(tmp_path)]) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    assert main(["toolset", "import", str(tmp_path / "good.json"), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "--out / is /" in err and "holds the input" in err and "'notes.txt', which is no dataset part" in err


def test_a_changed_reimport_is_rejected_with_the_reason(tmp_path, capsys):
    out = tmp_path / "toolsets"
    (tmp_path / "t.json").write_text(json.dumps(minimal()))
    assert main(["toolset", "import", str(tmp_path / "t.json"), "--out", str(out)]) == 0
    changed = minimal()
    changed["paths"]["/b"] = changed["paths"]["/a"]
    (tmp_path / "t.json").write_text(json.dumps(changed))
    # every input rejected: nothing imported (2), and the reject says why
    assert main(["toolset", "import", str(tmp_path / "t.json"), "--out", str(out)]) == 2
    assert "is already in" in capsys.readouterr().err
    assert len(read_records(out, Tool)[0][0].functions) == 1  # the old one, kept as the reject says


# --- lenient import of real-world defects (issue 14) -------------------------------------------

def _signature(tool: Tool) -> list:
    return [(f.name, f.method, f.path, sorted(f.parameters.get("properties", {})), sorted(f.required))
            for f in tool.functions]


def test_cli_imports_the_defect_folder_with_repairs_and_rejects_the_rest(tmp_path, capsys):
    out = tmp_path / "toolsets"
    assert main(["toolset", "import", str(DEFECTS), "--out", str(out)]) == 1
    tools = {t.name: t for t in read_records(out, Tool)[0]}
    assert len(tools) == 5 and all(t.extra["repairs"] for t in tools.values())
    rejects = read_records(tmp_path / "toolsets_rejects", Reject)[0]
    assert [Path(r.source).name for r in rejects] == ["unrepairable_parameters_string.json"]
    assert "at /paths/~1getExchangeRates/get/parameters: 'symbol' is not of type 'array'" in rejects[0].reason
    # the repaired documents give the functions the original ones give
    for name in ("AniAPI", "Abstract Public Holidays", "Axolotl", "Apache Superset"):
        tool = next(t for t in tools.values() if t.name == ORIGINALS[name]["info"]["title"])
        assert _signature(tool) == _signature(openapi_tool(ORIGINALS[name])), name
    repairs = " ".join(r for t in tools.values() for r in t.extra["repairs"])
    for what in ("points to nothing; replaced by an empty schema", "path without a leading '/'",
                 "not marked required; now required", "moved into schema", "made the requestBody",
                 "schema but no content map"):
        assert what in repairs, what


def test_strict_mode_stays_strict():
    doc = json.loads((DEFECTS / "path_param_not_required.json").read_text())
    with pytest.raises(OpenAPIError):
        openapi_tool(doc)  # what build_toolset calls for LLM-written documents
    assert openapi_tool(doc, lenient=True).extra["repairs"]
