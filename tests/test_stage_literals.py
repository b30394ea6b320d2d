"""No core or training module names a run-dir dataset path or a stage (issue 21): the runner hands a
stage its context (`toolweave.stage_context`) with its datasets resolved from its declaration, and
its name. Scanned: toolweave/ outside toolweave/stages/ (the stage files), training/, actors/.

Found: `.path("<dataset>")` (or `.path(NAME)`, NAME a module constant holding one) where the
dataset is one a declared stage reads or writes (or its `<output>_rejects`), and a declared stage's
name as a string literal used as identity: `stage="<name>"` in a call (CallTag, Reject, ...), or
assigned to `STAGE` / `stage` / `.stage`. None is left: a core function takes its stage's name, call
tag or datasets from its caller (the worker's `stage`, the driver's context)."""
import ast
from pathlib import Path

from toolweave.stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("toolweave", "training", "actors")


def _datasets_and_stages() -> tuple[set[str], set[str]]:
    datasets = {d.name for s in STAGES.values() for d in (*s.reads, *s.writes)}
    datasets |= {f"{s.writes[0].name.removesuffix('_raw')}_rejects" for s in STAGES.values() if s.per_record}
    return datasets, set(STAGES)


def _findings(path: Path, datasets: set[str], stages: set[str]) -> list[str]:
    tree, where = ast.parse(path.read_text(), str(path)), path.name if ROOT not in path.parents else path.relative_to(ROOT)
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func, args = node.func, node.args
            if isinstance(func, ast.Attribute) and func.attr == "path" and args:
                first = args[0]
                name = first.value if isinstance(first, ast.Constant) else (
                    constants.get(first.id) if isinstance(first, ast.Name) else None)
                if name in datasets:
                    found.append(f"{where}:{node.lineno}: .path({name!r})")
            for kw in node.keywords:
                if kw.arg == "stage" and isinstance(kw.value, ast.Constant) and kw.value.value in stages:
                    found.append(f"{where}:{node.lineno}: stage={kw.value.value!r}")
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in stages:
            for t in node.targets:
                name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
                if name in ("STAGE", "stage"):
                    found.append(f"{where}:{node.lineno}: {name} = {node.value.value!r}")
    return found


def _scanned_files() -> list[Path]:
    return sorted(p for pkg in SCANNED for p in (ROOT / pkg).rglob("*.py")
                  if not p.relative_to(ROOT).as_posix().startswith("toolweave/stages/"))


def test_no_core_or_training_module_names_a_run_dir_dataset_or_a_stage():
    datasets, stages = _datasets_and_stages()
    found = [f for p in _scanned_files() for f in _findings(p, datasets, stages)]
    assert not found, "take these from the stage's context (or its worker's stage) instead:\n" + "\n".join(found)


def test_the_scan_finds_each_form(tmp_path):
    """The scan is not blind: each form it looks for, written into a file, is found."""
    sample = tmp_path / "sample.py"
    sample.write_text('EPISODES = "episodes"\nSTAGE = "solve"\n\nclass W:\n    stage = "verify"\n\n'
                      'def f(cfg, CallTag):\n    cfg.path("sft")\n    cfg.path(EPISODES)\n    cfg.path("logs")\n'
                      '    return CallTag(stage="evaluate", role="judge")\n')
    found = _findings(sample, *_datasets_and_stages())
    assert sorted(f.split(": ", 1)[1] for f in found) == sorted(  # logs/ is no stage's dataset: not found
        ["STAGE = 'solve'", "stage = 'verify'", ".path('sft')", ".path('episodes')", "stage='evaluate'"])
