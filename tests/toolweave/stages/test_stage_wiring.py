"""The runner hands a worker its stage's name from the declaration: evaluate's own solving
(`eval_solve`) tags its LLM calls with its name, not solve's, and the search core names no stage."""
import json
import re
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Instruction, Tool
from toolweave.stages import evaluate, solve
from toolweave.stages.local import run_local
from toolweave.testing.fake_llm import FakeChatModel

ROOT = Path(__file__).parents[3]
G1 = ROOT / "tests" / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"


def _finish(req):
    return {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "type": "function", "function": {
        "name": "Finish", "arguments": json.dumps({"return_type": "give_answer", "final_answer": "done"})}}]}


@pytest.mark.parametrize("stage", [solve.STAGE, evaluate.EVAL_SOLVE], ids=lambda s: s.name)
def test_a_solving_stage_tags_its_calls_with_its_own_name(tmp_path, stage):
    from toolweave.authoring.instructions import import_toolbench_queries
    tools, instrs, _ = import_toolbench_queries(G1, stage="instructions")
    io.write_part(tools, tmp_path / "toolsets", Tool, name="input")
    io.write_part(instrs[:1], tmp_path / "instructions", Instruction, name="input")
    llm = FakeChatModel(handler=_finish)
    cfg = RunConfig(run_dir=str(tmp_path), solve={"method": "cot"}, run={"show_progress": False})
    summary = run_local(cfg, stage, {"default": llm})
    assert summary["processed"] == 1 and llm.requests
    assert {r["tag"].stage for r in llm.requests} == {stage.name}


def test_the_search_core_names_no_stage():
    found = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "toolweave" / "search").rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"CallTag\(stage=\"", line)]
    assert not found, f"stage names in the core: {found}"


def test_every_solve_setting_the_worker_reads_keys_resume(tmp_path):
    """Recorded while a solve runs: each `solve.*` setting read by the worker and the search core is
    in `shaped_by` (a rerun under another value stops), but `splits`, which only selects inputs."""
    from toolweave.authoring.instructions import import_toolbench_queries
    from toolweave.config import SolveConfig
    reads: set[str] = set()

    class RecordingSolveConfig(SolveConfig):
        def __getattribute__(self, name):
            if name in SolveConfig.model_fields:
                reads.add(name)
            return super().__getattribute__(name)

    tools, instrs, _ = import_toolbench_queries(G1, stage="instructions")
    for method in ("cot", "dfsdt"):
        cfg = RunConfig(run_dir=str(tmp_path / method), run={"show_progress": False})
        cfg.solve = RecordingSolveConfig(method=method)
        for name in ("toolsets", "instructions"):
            io.write_part(tools if name == "toolsets" else instrs[:1], cfg.path(name),
                          Tool if name == "toolsets" else Instruction, name="input")
        assert run_local(cfg, solve.STAGE, {"default": FakeChatModel(handler=_finish)})["processed"] == 1
    shaped = {k.removeprefix("solve.") for k in solve.STAGE.shaped_by}
    assert {"depth_unit", "max_steps", "method", "prompts"} <= reads
    assert reads - shaped == {"splits"}
