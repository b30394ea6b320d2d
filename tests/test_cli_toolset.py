from pathlib import Path

from ray_jobs.cli import main
from toolweave.io import read_records
from toolweave.schemas import CatalogueEntry, Reject, Tool

DATA = Path(__file__).parent / "data"
EVAL = DATA / "toolalpaca/eval_simulated.json"


def test_import_writes_tools_and_exits_0(tmp_path, capsys):
    out = tmp_path / "toolsets"
    assert main(["toolset", "import", str(EVAL), "--out", str(out)]) == 0
    tools, bad = read_records(out, Tool)
    assert bad == [] and len(tools) == 10 and sum(len(t.functions) for t in tools) == 54
    printed = capsys.readouterr()
    assert "functions" in printed.out and "54" in printed.out and printed.err == ""
    assert not (tmp_path / "toolsets_rejects").exists()
    # a rerun writes nothing twice
    assert main(["toolset", "import", str(EVAL), "--out", str(out)]) == 0
    assert len(read_records(out, Tool)[0]) == 10


def test_rejects_go_beside_the_dataset_and_exit_1(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{nope")
    out = tmp_path / "run/toolsets"
    code = main(["toolset", "import", str(EVAL), str(DATA / "toolalpaca/public_apis.json"),
                 str(tmp_path / "broken.json"), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.strip() == f"rejected: {tmp_path / 'broken.json'}: invalid JSON at line 1 column 2: " \
                          "Expecting property name enclosed in double quotes"
    rejects, _ = read_records(tmp_path / "run/toolsets_rejects", Reject)
    assert [r.source for r in rejects] == [str(tmp_path / "broken.json")]
    assert len(read_records(tmp_path / "run/catalogue", CatalogueEntry)[0]) == 1425


def test_nothing_imported_exits_2(tmp_path, capsys):
    (tmp_path / "empty.json").write_text("")
    assert main(["toolset", "import", str(tmp_path / "empty.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "empty.json: empty file" in err and "nothing was imported" in err
    (tmp_path / "file").write_text("x")
    assert main(["toolset", "import", str(EVAL), "--out", str(tmp_path / "file")]) == 2
