import json
from pathlib import Path

from toolweave.toolsets import import_paths

DATA = Path(__file__).parents[2] / "data"
EVAL = DATA / "toolalpaca/eval_simulated.json"


def test_mixed_folder_walk_and_format_detection():
    result = import_paths([DATA / "toolalpaca", DATA / "toolbench/data_example/instruction/G1_query.json",
                           DATA / "nowhere.json"])
    # toolalpaca/: eval_simulated.json (10 tools), eval_real.json (11), public_apis.json (the catalogue)
    assert result.summary["formats"] == {"catalogue": 1, "toolalpaca": 2, "toolbench": 1}
    assert result.summary["tools"] == 10 + 11 + 2 and len(result.catalogue) == 1425
    assert [r.reason for r in result.rejects] == [f"{DATA / 'nowhere.json'}: no such file or folder"]


def test_identical_duplicates_merge_and_different_ones_are_rejected(tmp_path):
    tools = json.loads(EVAL.read_text())
    changed = [{**tools[0], "Description": "another axolotl API"}]
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    (tmp_path / "copy.json").write_text(EVAL.read_text())
    result = import_paths([EVAL, tmp_path / "copy.json", tmp_path / "changed.json"])
    assert result.summary["tools"] == 10 and result.summary["merged_duplicates"] == 10
    [reject] = result.rejects
    assert reject.reason == (f"{tmp_path / 'changed.json'}: tool 'Axolotl': tool id 'axolotl' is already taken "
                             f"by a different tool from {EVAL}; kept that one")
    kept = next(t for t in result.tools if t.id == "axolotl")
    assert kept.description == tools[0]["Description"]


def test_answer_files_are_not_tools():
    result = import_paths([DATA / "toolbench/data_example/answer/G1_answer"])
    assert result.tools == [] and len(result.rejects) == 5
    assert all("unrecognised format (an object with keys win, tree" in r.reason for r in result.rejects)
