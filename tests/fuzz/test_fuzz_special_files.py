"""Special files and hostile names, seeded: folders of real tool files mixed with FIFOs, links to them,
sockets, devices, broken links, oversized files, `$ref`s to FIFOs, all under names full of control
characters, through `toolweave toolset import`. 0 hangs, 0 good files lost, every special file a
named reject, every terminal line one record with nothing a terminal acts on."""
import json
import os
import random
import re
import socket
import time
from pathlib import Path

import pytest

from ray_jobs.cli import main
from toolweave.io import read_records
from toolweave.printable import printable
from toolweave.schemas import Reject, Tool
from toolweave.toolsets.common import MAX_FILE_BYTES

from .conftest import DATA, report

pytestmark = pytest.mark.slow
ROUNDS = 6
TERMINAL_ACTS_ON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
NASTY = ["\x1b]0;pwned\x07", "\x1b[2J", "\x1b[H", "\r", "\n", "\t", "\x9b", "\x7f", "\x01", "\x85",  # no NUL, no /
         "\u202e", "\u2028", "\u2066", "\x1b]8;;x\x1b\\", "é", "東京", " ", "rejected: "]


def hostile_name(rng: random.Random, i: int, suffix: str) -> str:
    return f"{i:02d}" + "".join(rng.choice(NASTY) for _ in range(rng.randint(1, 4))) + suffix


def openapi_docs() -> list[dict]:
    return [json.loads(t["Documentation"]) for t in json.loads((DATA / "toolalpaca/eval_simulated.json").read_text())]


def build_round(rng: random.Random, folder: Path, docs: list[dict]) -> tuple[set[str], set[str], list]:
    """A folder of good OpenAPI files and special ones; (good names, special names, sockets to close)."""
    folder.mkdir()
    good, special, sockets = set(), set(), []
    pipe = folder / hostile_name(rng, 0, ".yaml")
    os.mkfifo(pipe)
    special.add(pipe.name)
    for i in range(1, rng.randint(8, 14)):
        kind = rng.choice(["good"] * 6 + ["fifo", "link_fifo", "link_dev", "socket", "broken", "big", "ref_fifo",
                                          "dir"])
        path = folder / hostile_name(rng, i, ".json")
        if kind == "good":
            doc = dict(rng.choice(docs))
            doc["info"] = {**doc.get("info", {}), "title": f"T{i}"}
            path.write_text(json.dumps(doc))
            good.add(path.name)
            continue
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "link_fifo":
            path.symlink_to(pipe)
        elif kind == "link_dev":
            path.symlink_to(rng.choice(["/dev/zero", "/dev/null", "/dev/urandom"]))
        elif kind == "socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            sockets.append(sock)
        elif kind == "broken":
            path.symlink_to(folder / "gone.json")
        elif kind == "big":
            with open(path, "wb") as f:
                f.truncate(MAX_FILE_BYTES + rng.randint(1, 10_000))
        elif kind == "ref_fifo":  # a good document but for one $ref, somewhere in it, to the FIFO
            doc = json.loads(json.dumps(rng.choice(docs)))
            doc.setdefault("components", {}).setdefault("schemas", {})["Piped"] = {"$ref": pipe.name}
            path.write_text(json.dumps(doc))
        elif kind == "dir":  # a folder named like a tool file: walked, not read
            path.mkdir()
            continue
        special.add(path.name)
    return good, special, sockets


def test_special_files_under_hostile_names_are_named_rejects_and_nothing_hangs(tmp_path, capsys):
    rng = random.Random(22)
    docs = openapi_docs()
    hangs, lost, unnamed, dirty_lines, miscounted = [], [], [], [], []
    files = specials = 0
    for r in range(ROUNDS):
        folder = tmp_path / f"in{r}"
        good, special, sockets = build_round(rng, folder, docs)
        files += len(good) + len(special)
        specials += len(special)
        out = tmp_path / f"out{r}" / "toolsets"
        t = time.monotonic()
        try:
            main(["toolset", "import", str(folder), "--out", str(out)])
        finally:
            for s in sockets:
                s.close()
        if time.monotonic() - t > 20:
            hangs.append(r)
        err = capsys.readouterr().err
        if TERMINAL_ACTS_ON.search(err):
            dirty_lines.append((r, repr(err)[:300]))
        rejects = read_records(out.with_name("toolsets_rejects"), Reject)[0] if special else []
        lines = err.splitlines()
        if not good and lines and lines[-1] == "error: nothing was imported":
            lines.pop()
        if len(lines) != len(rejects) or not all(line.startswith("rejected: ") for line in lines):
            miscounted.append((r, len(rejects), lines))
        imported = {Path(t.extra["source_file"]).name for t in read_records(out, Tool)[0]} if good else set()
        lost += sorted(good - imported)
        named = {Path(x.source).name for x in rejects}
        unnamed += sorted(special - named)
    report("special files", rounds=ROUNDS, files=files, special_files=specials, hangs=len(hangs), lost=len(lost),
           unnamed=len(unnamed), dirty_terminal=len(dirty_lines), miscounted=len(miscounted))
    assert hangs == [] and lost == [] and unnamed == [] and dirty_lines == [] and miscounted == []


def test_printable_leaves_no_control_character_in_random_text():
    rng = random.Random(2201)
    pool = [chr(c) for c in range(0x00, 0xa0)] + ["\u2028", "\u2029", "\u202e", "\u2067", "\ud800", "é", "東"]
    cases = 5000
    for _ in range(cases):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        shown = printable(text)
        assert not TERMINAL_ACTS_ON.search(shown) and "\n" not in shown, repr(text)
        if not TERMINAL_ACTS_ON.search(text) and "\n" not in text:
            assert shown == text  # safe text is shown as it is
    report("printable", cases=cases)
