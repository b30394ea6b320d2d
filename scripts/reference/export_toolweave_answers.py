"""Export toolweave's answers (episode_to_toolbench_answer) for the recorded ToolBench DFSDT scripts
with valid data, solved by toolweave under the `toolbench` preset, so that ToolBench's own preprocess
can be run on them (record_toolbench_preprocess.py). toolweave code only.

    PYTHONPATH=. python scripts/reference/export_toolweave_answers.py --out /tmp/ref/answers_toolweave
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from toolweave.converters.toolbench import episode_to_toolbench_answer
from toolweave.testing.toolbench_golden import golden, run_script


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    for s in golden()["scripts"]:
        if s["valid_data"]:
            ep, _, _ = run_script(s)
            (out / f"{s['name']}_DFS_woFilter_w2.json").write_text(json.dumps(episode_to_toolbench_answer(ep), indent=2))


if __name__ == "__main__":
    main()
