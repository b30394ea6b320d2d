"""≥ 500 mutated real tool files through the importer and its writer: no exception, every file gives
tools or a reject naming it (0 lost), nothing outside the folder read, the network never reached."""
import copy
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from toolweave.toolsets import import_paths
from toolweave.toolsets.command import write_result
from toolweave.toolsets.export import openai_tools

from .conftest import DATA, report

pytestmark = pytest.mark.slow
FILES = 520
CANARY = "FUZZ-CANARY-OUTSIDE-THE-FOLDER"


def seeds() -> list[tuple[str, object]]:
    """(suffix, document) of real tool files of every format the importer reads."""
    alpaca = json.loads((DATA / "toolalpaca/eval_simulated.json").read_text())
    out: list[tuple[str, object]] = []
    for tool in alpaca:
        out.append((".json", json.loads(tool["Documentation"])))  # OpenAPI 3
        out.append((".json", [tool]))  # a ToolAlpaca tool file
    for f in sorted((DATA / "toolbench/data_example/instruction").glob("G*_query.json")):
        out.append((".json", json.loads(f.read_text())[:2]))  # ToolBench queries
    for f in sorted((DATA / "openapi_defects").glob("*.json")):
        out.append((".json", json.loads(f.read_text())))
    out.append((".json", json.loads((DATA / "toolalpaca/public_apis.json").read_text())["entries"][:15]))
    from toolweave.toolsets.toolalpaca import import_toolalpaca
    tools = import_toolalpaca(alpaca[:3], "seed").tools
    out.append((".json", openai_tools(tools[:1], naming="plain")[0]))  # an OpenAI tool list
    return out


def _nodes(doc, path=()):
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, (*path, i))


def _junk(rng: random.Random, ref_url: str, outside: Path):
    return rng.choice([
        None, 5, -1, 0.5, True, "", "x" * 3000, 10 ** 100, [], {}, "2021-01-01", "\ud800 lone", "é\u4e2d",
        {"$ref": "#/components/schemas/Nope"}, {"$ref": "../" + outside.name}, {"$ref": str(outside)},
        {"$ref": outside.as_uri()}, {"$ref": ref_url}, {"$ref": "ftp://127.0.0.1/x.json"}, {"$ref": "/etc/passwd"},
        {"$ref": "#/"}, {"$ref": 5}, json.loads("[" * 300 + "]" * 300), {"api_list": 5},
        {"servers": [{"url": "http://[::1"}]},
    ])


def mutate_doc(rng: random.Random, doc, ref_url: str, outside: Path):
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        nodes = list(_nodes(doc))
        path, node = rng.choice(nodes)
        kind = rng.randrange(4)
        if not path or kind == 0:  # replace a value
            if not path:
                continue
            parent = doc
            for p in path[:-1]:
                parent = parent[p]
            parent[path[-1]] = _junk(rng, ref_url, outside)
        elif kind == 1 and isinstance(node, dict) and node:  # drop a key
            node.pop(rng.choice(list(node)))
        elif kind == 2 and isinstance(node, dict):  # add a key
            node[rng.choice(["$ref", "parameters", "paths", "openapi", "type", "required", "x"])] = \
                _junk(rng, ref_url, outside)
        elif kind == 3 and isinstance(node, list) and node:  # duplicate an item
            node.append(copy.deepcopy(rng.choice(node)))
    return doc


def render(rng: random.Random, suffix: str, doc) -> tuple[str, bytes]:
    """The document as file bytes, sometimes as YAML (with anchors), a BOM, cut or with a bad byte."""
    if rng.random() < 0.25:
        suffix, text = ".yaml", yaml.safe_dump(doc, allow_unicode=True)
        if rng.random() < 0.1:  # aliases that expand to billions
            text = "a0: &a0 [x,x,x,x,x,x,x,x,x]\n" + "".join(
                f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)) + text
    else:
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    data = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.05:
        data = b"\xef\xbb\xbf" + data
    elif roll < 0.10:
        data = data[: rng.randint(0, len(data))]
    elif roll < 0.13:
        i = rng.randint(0, max(0, len(data) - 1))
        data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    return suffix, data


class _Counter(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        _Counter.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


def test_mutated_real_tool_files_are_imported_or_rejected_by_name(tmp_path):
    rng = random.Random(1500)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ref_url = f"http://127.0.0.1:{server.server_address[1]}/schema.json"
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"type": "string", "description": CANARY}))
    folder = tmp_path / "in"
    folder.mkdir()
    corpus = seeds()
    files = []
    for i in range(FILES):
        suffix, doc = rng.choice(corpus)
        suffix, data = render(rng, suffix, mutate_doc(rng, doc, ref_url, outside))
        name = f"f{i:04d}{suffix}"
        if rng.random() < 0.02:
            name = os.fsdecode(f"f{i:04d}-\xff".encode("latin-1")) + suffix  # not UTF-8
        path = folder / name
        path.write_bytes(data)
        files.append(path)
    crashes, lost, slow = [], [], []
    tools = rejects = 0
    try:
        for n, path in enumerate(files):
            start = time.monotonic()
            try:
                result = import_paths([path])
                write_result(result, tmp_path / "out" / f"{n}" / "toolsets")  # the writer takes all of it
            except Exception as e:  # a crash: collected with the file that made it
                crashes.append((path.name, repr(e)[:300]))
                continue
            if time.monotonic() - start > 20:
                slow.append(path.name)
            named = [r for r in result.rejects if r.source.endswith(path.name.encode("utf-8", "backslashreplace")
                                                                   .decode("utf-8"))]
            if not (result.tools or result.catalogue or named or result.summary.get("merged_duplicates")):
                lost.append(path.name)
            tools += len(result.tools)
            rejects += len(result.rejects)
    finally:
        server.shutdown()
        server.server_close()
    written = " ".join(json.dumps(pq.read_table(p).to_pylist(), default=str)
                       for p in (tmp_path / "out").rglob("*.parquet"))
    report("importer", files=FILES, tools=tools, rejects=rejects, crashes=len(crashes), lost=len(lost),
           network_requests=_Counter.hits, outside_reads=written.count(CANARY))
    assert crashes == [] and lost == [] and slow == []
    assert _Counter.hits == 0 and CANARY not in written
    assert tools > 50 and rejects > 100  # the mutations bite, and most tools survive them
