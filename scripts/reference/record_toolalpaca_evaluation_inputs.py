"""Record what ToolAlpaca's `evaluation.py` reads from its evaluation files, as golden data.

Runs the reference's own `evaluation.py` (runpy, as `__main__`) from a checkout given on the command
line, on a copy of each evaluation file given `Instances` (the model outputs it scores: one scripted
step per question, none for every fifth question, which it counts in `error_num` unjudged), with a
template whose only text is its four fields, so each judge prompt is exactly what it substituted.
Its `utils` module (openai, httpx, ... at import) is replaced by a stand-in whose
`openai_chat_completions` keeps the prompt and answers "Yes" twice. Keeps per judged question the
tool name, question id, instruction, the golden standard text and the sha256 of the documentation
shown; the ids it counted as errors; and its statistics.

    python scripts/reference/record_toolalpaca_evaluation_inputs.py --toolalpaca /tmp/ref/toolalpaca \
        --data tests/data/toolalpaca --out tests/data/reference/toolalpaca/evaluation_inputs_golden.json
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import runpy
import sys
import tempfile
import types
from pathlib import Path

SEP = "\u241e"  # a field separator no evaluation file holds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolalpaca", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    root = Path(a.toolalpaca).resolve()
    prompts: list[str] = []

    def openai_chat_completions(prompt, **kwargs):
        prompts.append(prompt[0]["content"])
        text = "## Results\nProcess Correctness: Yes\nFinal Response Correctness: Yes"
        return {"choices": [{"message": {"content": text}}]}

    sys.modules["utils"] = types.SimpleNamespace(openai_chat_completions=openai_chat_completions)
    golden = {"source": "tangqiaoyu/ToolAlpaca " + ((root / ".commit").read_text().strip()
                                                    if (root / ".commit").exists() else ""), "files": {}}
    for name in ("eval_real.json", "eval_simulated.json"):
        data = json.loads((Path(a.data) / name).read_text())
        for tool in data:
            tool["Instances"] = [{"intermediate_steps": [] if q % 5 == 4 else [[["act", "{}"], "obs"]], "output": "done"}
                                 for q in range(len(tool["Instructions"]))]
        with tempfile.TemporaryDirectory() as tmp:
            api, template, out = Path(tmp) / name, Path(tmp) / "t.txt", Path(tmp) / "out.json"
            api.write_text(json.dumps(data))
            template.write_text(SEP.join(["$documentation", "$instruction", "$standard", "$solution"]))
            prompts.clear()
            sys.argv = ["evaluation.py", "-temp", str(template), "-api", str(api), "-out", str(out)]
            cwd = os.getcwd()
            os.chdir(root)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    runpy.run_path(str(root / "evaluation.py"), run_name="__main__")
            finally:
                os.chdir(cwd)
            result = json.loads(out.read_text())
        cases = []
        judged = [(tool_name, case["id"]) for tool_name, rows in result.items() if tool_name != "statistics"
                  for case in rows if case["input"]]
        for (tool_name, qid), prompt in zip(judged, prompts):
            documentation, instruction, standard, _ = prompt.split(SEP)
            cases.append({"tool": tool_name, "id": qid, "instruction": instruction, "standard": standard,
                          "documentation_sha256": hashlib.sha256(documentation.encode()).hexdigest()})
        errors = [[tool_name, case["id"]] for tool_name, rows in result.items() if tool_name != "statistics"
                  for case in rows if not case["input"]]
        golden["files"][name] = {"judged": cases, "errors": errors, "statistics": result["statistics"]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
