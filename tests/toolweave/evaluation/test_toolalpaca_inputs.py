"""ToolAlpaca's evaluation files imported as evaluation inputs, as its evaluation.py reads them: the golden file
holds the instruction, golden standard text and documentation each of its judge prompts was given
(scripts/reference/record_toolalpaca_evaluation_inputs.py)."""
import hashlib
import json
from pathlib import Path

import pytest

from toolweave.evaluation.toolalpaca import golden_answers, standard_text
from toolweave.evaluation.toolalpaca_inputs import import_eval_file

DATA = Path(__file__).parents[2] / "data"
GOLDEN = json.loads((DATA / "reference" / "toolalpaca" / "evaluation_inputs_golden.json").read_text())


@pytest.mark.parametrize("name", ["eval_real.json", "eval_simulated.json"])
def test_every_question_imports_with_what_evaluation_py_shows_its_judge(name):
    tools, instructions, rejects = import_eval_file(DATA / "toolalpaca" / name)
    golden = GOLDEN["files"][name]
    assert not rejects and len(instructions) == golden["statistics"]["num"]  # 114 real, 100 simulated
    by_case = {(i.extra["toolalpaca_eval"]["tool"], i.extra["toolalpaca_eval"]["id"]): i for i in instructions}
    assert {(t, q) for t, q in golden["errors"]} <= set(by_case)
    tool_of = {t.id: t for t in tools}
    for case in golden["judged"]:
        ins = by_case[(case["tool"], case["id"])]
        assert ins.text == case["instruction"] and ins.split == "test_tool"
        assert standard_text(golden_answers(ins, tool_of)) == case["standard"]
        doc = "\n".join(tool_of[t].nl_documentation for t in ins.tool_ids)  # as the evaluate stage builds it
        assert hashlib.sha256(doc.encode()).hexdigest() == case["documentation_sha256"]


def test_a_separate_golden_file_is_zipped_by_position_and_missing_goldens_are_rejected(tmp_path):
    tools = json.loads((DATA / "toolalpaca" / "eval_simulated.json").read_text())[:2]
    golden = [{"Golden_Answers": t.pop("Golden_Answers")} for t in tools]
    golden[1]["Golden_Answers"] = golden[1]["Golden_Answers"][:3]  # the second tool's later questions lack one
    (tmp_path / "api.json").write_text(json.dumps(tools))
    (tmp_path / "gold.json").write_text(json.dumps(golden))
    _, alone, rejects = import_eval_file(tmp_path / "api.json")
    assert not alone and len(rejects) == sum(len(t["Instructions"]) for t in tools)
    assert "tool 'Axolotl' question 0: no golden action sequence" in rejects[0].reason
    _, instructions, rejects = import_eval_file(tmp_path / "api.json", tmp_path / "gold.json")
    assert len(instructions) == len(tools[0]["Instructions"]) + 3
    assert len(rejects) == len(tools[1]["Instructions"]) - 3
    assert instructions[0].extra["golden_answers"] == golden[0]["Golden_Answers"][0]


def test_a_file_of_another_shape_is_refused_naming_it(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"openapi": "3.0.0"}))
    with pytest.raises(ValueError, match=r"x.json: not a ToolAlpaca evaluation file"):
        import_eval_file(tmp_path / "x.json")
