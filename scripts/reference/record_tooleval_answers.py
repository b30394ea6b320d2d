"""Record how ToolBench's / StableToolBench's ToolEval code reads answers (none of their code here).

Two recordings, both written into one JSON (gzipped) for tests/toolweave/evaluation/test_tooleval_reading.py:

* `convert`: `convert_to_answer_format.py` (`process_valid_data` / `process_invalid_data`) on raw answer
  files, each file alone with `random.seed(42)` first (the seed the script sets on import; a batch run's
  random walks depend on its os.listdir order). ToolBench's script for ToolBench's answers,
  StableToolBench's for StableToolBench's.
* `read`: what `eval_pass_rate.py` makes of converted answers: `check_has_hallucination` (which rewrites
  tool messages in place; an exception counts as not hallucinated, as the script does), then `get_steps`
  and its Finish test (`"'name': 'Finish'" not in final_step`). StableToolBench's script runs no
  hallucination check. `--sample N` keeps N entries per ToolBench converted file as test inputs.

Run with the reference checkouts' tooleval folders importable (see tests/data/reference/SOURCES.md).
"""
from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import importlib
import json
import random
import sys
from pathlib import Path


def _load(tooleval: Path):
    """Import (convert_to_answer_format, utils, the hallucination check) from one tooleval folder."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("convert_to_answer_format", "utils", "evaluation",
                                                               "evaluators")]:
        del sys.modules[name]
    sys.path.insert(0, str(tooleval))
    try:
        convert = importlib.import_module("convert_to_answer_format")
        utils = importlib.import_module("utils")
        rtl = importlib.import_module("evaluators.registered_cls.rtl")
    finally:
        sys.path.remove(str(tooleval))
    return convert, utils, rtl.ReinforceToolLearningEvaluator.check_has_hallucination


def _convert_one(convert, path: Path, method: str) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    random.seed(42)
    if not data["answer_generation"]["valid_data"]:
        return convert.process_invalid_data(method, data)
    return convert.process_valid_data(method, data["answer_generation"])


def _read_one(utils, hallucination, example: dict) -> dict:
    example = copy.deepcopy(example)
    if hallucination is None:
        not_hallucinate = None
    else:
        try:
            not_hallucinate = hallucination(None, example["available_tools"], example["answer"])
        except Exception:  # eval_pass_rate.py: a bare except counts it as not hallucinated
            not_hallucinate = True
    steps, final = utils.get_steps(example)
    return {"not_hallucinate": not_hallucinate, "answer_steps": steps, "final_step": final,
            "finished": "'name': 'Finish'" in final, "answer_details": example["answer"]["answer_details"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolbench", required=True, help="ToolBench checkout (its toolbench/tooleval is used)")
    ap.add_argument("--stabletoolbench", required=True)
    ap.add_argument("--toolbench-answers", required=True, help="ToolBench data_example/answer")
    ap.add_argument("--stabletoolbench-data", required=True, help="StableToolBench data_example")
    ap.add_argument("--sample", type=int, default=3)
    ap.add_argument("--sample-out", required=True, help="where the sampled converted entries go (test input)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tb_eval = Path(a.toolbench) / "toolbench" / "tooleval"
    stb_eval = Path(a.stabletoolbench) / "toolbench" / "tooleval"
    stb = Path(a.stabletoolbench_data)
    golden: dict = {"convert": {}, "read": {}, "read_all_digests": {}}

    convert, utils, hallucination = _load(tb_eval)
    for p in sorted(Path(a.toolbench_answers).glob("G*_answer/*.json")):
        golden["convert"][f"toolbench/{p.parent.name}/{p.name}"] = _convert_one(convert, p, "DFS_woFilter_w2")
    sample: dict = {}
    rng = random.Random(0)
    evalset = tb_eval / "results" / "default_evalset"
    for f in sorted(evalset.glob("*/*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        key = f"{f.parent.name}/{f.name}"
        digests = {}
        for qid, ex in data.items():
            r = _read_one(utils, hallucination, ex)
            digests[qid] = [r["finished"], r["not_hallucinate"],
                            hashlib.sha256((r["answer_steps"] + "\n" + r["final_step"]).encode()).hexdigest()[:20]]
        golden["read_all_digests"][key] = digests
        # a spread of cases: finished or not, hallucinated or not, an assistant node last
        ids = sorted(data)
        picked = set(rng.sample(ids, min(a.sample, len(ids))))
        for want in ((False, None), (None, False)):
            hit = next((q for q in ids if (want[0] is None or digests[q][0] == want[0])
                        and (want[1] is None or digests[q][1] == want[1])), None)
            if hit:
                picked.add(hit)
        sample[key] = {q: data[q] for q in sorted(picked)}
        golden["read"][f"toolbench/{key}"] = {q: _read_one(utils, hallucination, data[q]) for q in sorted(picked)}

    convert, utils, _ = _load(stb_eval)
    for p in sorted((stb / "answer").glob("*/*/*.json")):
        method = "CoT@1" if "CoT" in p.name else "DFS_woFilter_w2"
        golden["convert"][f"stabletoolbench/{p.parent.parent.name}/{p.name}"] = _convert_one(convert, p, method)
    for f in sorted((stb / "model_predictions_converted").glob("*/*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        golden["read"][f"stabletoolbench/{f.parent.name}/{f.name}"] = {
            q: _read_one(utils, None, ex) for q, ex in data.items()}

    with gzip.open(a.sample_out, "wt", encoding="utf-8") as g:
        json.dump(sample, g, ensure_ascii=False)
    with gzip.open(a.out, "wt", encoding="utf-8") as g:
        json.dump(golden, g, ensure_ascii=False)  # key order kept: str(dict) shows it


if __name__ == "__main__":
    main()
