"""`toolweave toolset import` with hostile file names and document keys: every `rejected:` line is
one record on one line, with nothing in it a terminal acts on; the rejects keep their real names."""
import json
import re
from pathlib import Path

from ray_jobs.cli import main
from toolweave.io import read_records
from toolweave.schemas import Reject, Tool

NAMES = ["\x1b]0;pwned\x07.json", "\x1b[2J\x1b[H.json", "two\nrejected: forged.json", "cr\rover.json",
         "\x9b31mred.json", "\u202enosj.evil.json", "del\x7f.json", "tab\tname.json"]
KEYS = {"\x1b[2Jclear": 1, "line\nbreak": 2, "\u202eltr": 3}  # an unrecognised document: its keys are in the reason
TERMINAL_ACTS_ON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
GOOD = {"openapi": "3.0.0", "info": {"title": "Good", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}}


def test_hostile_names_and_keys_print_one_escaped_line_per_reject(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in NAMES:
        (src / name).write_text(json.dumps({"not": "a tool"}))
    (src / "keys.json").write_text(json.dumps(KEYS))
    (src / "good.json").write_text(json.dumps(GOOD))
    out = tmp_path / "toolsets"
    assert main(["toolset", "import", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert not TERMINAL_ACTS_ON.search(err), repr(err)
    lines = err.splitlines()
    assert len(lines) == len(NAMES) + 1 and all(line.startswith("rejected: ") for line in lines), lines
    assert "\\x1b]0;pwned\\x07.json" in err and "\\x9b31mred.json" in err and "\\u202enosj" in err
    assert "/two rejected: forged.json: unrecognised" in err  # a reason's whitespace runs are one space
    assert "\\x1b[2Jclear" in err
    # the data keeps what the files are really called: only the terminal sees escapes
    rejects = read_records(tmp_path / "toolsets_rejects", Reject)[0]
    assert {Path(r.source).name for r in rejects} == {*NAMES, "keys.json"}
    assert [t.name for t in read_records(out, Tool)[0]] == ["Good"]


def test_a_hostile_name_in_the_out_folder_is_escaped_in_the_error(tmp_path, capsys):
    out = tmp_path / "toolsets"
    out.mkdir()
    (out / "\x1b]0;pwned\x07").write_text("x")
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    assert main(["toolset", "import", str(tmp_path / "good.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "\\x1b]0;pwned\\x07" in err and not TERMINAL_ACTS_ON.search(err), repr(err)
