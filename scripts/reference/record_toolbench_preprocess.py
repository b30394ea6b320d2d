"""Record what ToolBench's own SFT preprocess makes of answer files, as golden data.

Runs `preprocess/preprocess_toolllama_data.py` (`preprocess_rapidapi`, method DFS_woFilter_w2) of an
OpenBMB/ToolBench checkout given on the command line, one answer file at a time (its output order is
os.listdir's), over two folders: ToolBench's own answers for the recorded DFSDT scripts
(record_toolbench_dfsdt.py --answers-out) and toolweave's exports of the same runs
(export_toolweave_answers.py). A crash (e.g. process_system_message's assert) is recorded as such.

    PYTHONPATH=<termcolor,tenacity> python scripts/reference/record_toolbench_preprocess.py \
        --toolbench /tmp/ref/toolbench --toolbench-answers /tmp/ref/answers_toolbench \
        --toolweave-answers /tmp/ref/answers_toolweave --out tests/data/reference/toolbench/preprocess_golden.json.gz
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path


def load_preprocess(root: Path):
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("tb_preprocess", root / "preprocess" / "preprocess_toolllama_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_folder(pre, folder: Path) -> dict:
    out = {}
    for f in sorted(folder.glob("*_DFS_woFilter_w2.json")):
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(f, d)
            target = Path(d) / "out.json"
            try:
                pre.preprocess_rapidapi(d, "DFS_woFilter_w2", str(target))
                out[f.name] = json.loads(target.read_text())
            except Exception as e:  # noqa: BLE001 - the reference's failure is the result
                out[f.name] = {"crash": f"{type(e).__name__}: {e}"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolbench", required=True)
    ap.add_argument("--toolbench-answers", required=True)
    ap.add_argument("--toolweave-answers", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    root = Path(a.toolbench).resolve()
    pre = load_preprocess(root)
    theirs = run_folder(pre, Path(a.toolbench_answers))
    ours = run_folder(pre, Path(a.toolweave_answers))
    exported = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:20]
                for f in sorted(Path(a.toolweave_answers).glob("*.json"))}
    commit = (root / ".commit").read_text().strip() if (root / ".commit").exists() else ""
    doc = {"source": {"repo": "OpenBMB/ToolBench", "commit": commit,
                      "file": "preprocess/preprocess_toolllama_data.py", "method": "DFS_woFilter_w2"},
           "toolbench_answers": theirs, "toolweave_answers": ours, "toolweave_export_sha256": exported}
    with gzip.open(a.out, "wt", encoding="utf-8") as f:
        f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    same = sum(theirs.get(k) == v for k, v in ours.items())
    print(f"{len(theirs)} ToolBench answers, {len(ours)} toolweave answers, {same} give the same examples",
          file=sys.stderr)


if __name__ == "__main__":
    main()
