"""Tool sources and `$ref` targets that are no regular files (FIFOs, devices, sockets, links to
them, oversized files): each is one named reject within seconds, and the good files beside them are
imported."""
import json
import os
import socket
import time
from pathlib import Path

from ray_jobs.cli import main
from toolweave.io import read_records
from toolweave.schemas import Reject, Tool
from toolweave.toolsets import import_paths
from toolweave.toolsets.common import MAX_FILE_BYTES


def minimal(title: str, schema: dict | None = None) -> dict:
    ok = {"description": "ok"}
    if schema is not None:
        ok["content"] = {"application/json": {"schema": schema}}
    return {"openapi": "3.0.0", "info": {"title": title, "version": "1"},
            "paths": {"/a": {"get": {"responses": {"200": ok}}}}}


def special_folder(folder: Path) -> socket.socket:
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(minimal("Good")))
    os.mkfifo(folder / "pipe.yaml")
    (folder / "ref_pipe.json").write_text(json.dumps(minimal("RefPipe", {"$ref": "pipe.yaml"})))
    (folder / "ref_zero.json").write_text(json.dumps(minimal("RefZero", {"$ref": "zero.json#/x"})))
    (folder / "ref_ok.json").write_text(json.dumps(minimal("RefOk", {"$ref": "sub/pet.json"})))
    (folder / "sub").mkdir()
    (folder / "sub" / "pet.json").write_text('{"type": "object"}')
    (folder / "link_to_pipe.json").symlink_to(folder / "pipe.yaml")
    (folder / "zero.json").symlink_to("/dev/zero")
    (folder / "broken.json").symlink_to(folder / "gone.json")
    with open(folder / "big.json", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.json"))
    return sock


EXPECTED = {"pipe.yaml": "a FIFO", "link_to_pipe.json": "a FIFO", "zero.json": "symbolic link leading out",
            "sock.json": "a socket", "broken.json": "broken symbolic link", "big.json": "over the limit",
            "ref_pipe.json": "$ref file pipe.yaml: cannot read: a FIFO",
            "ref_zero.json": "$ref 'zero.json' leaves the document's folder",
            "sub/pet.json": "unrecognised format"}  # a $ref target, no tool file


def test_special_files_beside_good_ones_are_named_rejects_in_seconds(tmp_path):
    sock = special_folder(tmp_path / "tools")
    try:
        t = time.monotonic()
        result = import_paths([tmp_path / "tools", "/dev/zero", tmp_path / "tools" / "pipe.yaml"])
        took = time.monotonic() - t
    finally:
        sock.close()
    assert took < 10
    assert {t.name for t in result.tools} == {"Good", "RefOk"}
    reasons = [r.reason for r in result.rejects]
    for name, why in EXPECTED.items():
        hits = [r for r in reasons if r.startswith(f"{tmp_path / 'tools' / name}:")]
        assert hits and why in hits[0], (name, hits)
    assert any(r.startswith("/dev/zero: a character device") for r in reasons), reasons
    # the FIFO was named twice (in the folder, and as a path): one reject per naming, none lost
    assert len(result.rejects) == len(EXPECTED) + 2


def test_cli_import_with_a_fifo_ref_finishes_and_writes_the_good_tool(tmp_path, capsys):
    sock = special_folder(tmp_path / "tools")
    try:
        t = time.monotonic()
        code = main(["toolset", "import", str(tmp_path / "tools"), "--out", str(tmp_path / "toolsets")])
        assert time.monotonic() - t < 15
    finally:
        sock.close()
    assert code == 1
    assert {t.name for t in read_records(tmp_path / "toolsets", Tool)[0]} == {"Good", "RefOk"}
    assert len(read_records(tmp_path / "toolsets_rejects", Reject)[0]) == len(EXPECTED)
    assert capsys.readouterr().err.count("rejected: ") == len(EXPECTED)
