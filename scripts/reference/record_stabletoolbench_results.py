"""Record how StableToolBench's own scripts read its published result files, as golden data.

Runs, from a checkout given on the command line (its `toolbench/tooleval`):
- `eval_pass_rate.py` as `__main__` on a copy of each `data_example/pass_rate_results/<model>/` file,
  with the ids of `solvable_queries_example/test_query_ids` and nothing left to judge (every id is
  in the saved file, no `--overwrite`): it reads the saved labels and prints the solve rate and its
  std; once with run_pass_rate.sh's `--evaluate_times 3`, once with the script's default 4.
- `eval_preference.py`'s `get_pass_rate_results` on each published pass-rate CSV (what the
  preference script reads), and `eval_preference.py` as `__main__` (run_preference.sh's arguments:
  `--evaluate_times 3 --use_pass_rate true`) on a copy of the published preference JSON whose
  rounds are all complete: it prints the win and tie rates.
No judge is called (a stand-in `openai` module fails if one is); `backoff` (not installed) is a
no-op decorator. Keeps what each printed and returned.

    PYTHONPATH=<termcolor,tenacity> python scripts/reference/record_stabletoolbench_results.py \
        --stabletoolbench /tmp/ref/stb --out tests/data/reference/stabletoolbench/results_reading_golden.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import runpy
import shutil
import sys
import tempfile
import types
from pathlib import Path

MODELS = ("virtual_chatgpt_cot", "virtual_chatgpt_dfs")
TEST_SET = "G1_instruction"


def run_main(script: Path, argv: list[str]) -> str:
    sys.argv = [script.name, *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        runpy.run_path(str(script), run_name="__main__")
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stabletoolbench", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    root = Path(a.stabletoolbench).resolve()
    tooleval, data = root / "toolbench" / "tooleval", root / "data_example"
    ids = root / "solvable_queries_example" / "test_query_ids"
    sys.path[:0] = [str(tooleval)]
    sys.modules["backoff"] = types.SimpleNamespace(on_exception=lambda *x, **k: (lambda f: f), expo=None)
    openai = types.ModuleType("openai")

    class ChatCompletion:
        @staticmethod
        def create(*args, **kwargs):
            raise AssertionError("the recording judges nothing: every result is read from the files")

    class OpenAI:  # StableToolBench's utils.py makes clients with it; none may be used
        def __init__(self, *args, **kwargs):
            self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=ChatCompletion.create))

    openai.ChatCompletion, openai.OpenAI = ChatCompletion, OpenAI
    sys.modules["openai"] = openai
    pool = Path(tempfile.mkdtemp()) / "api_pool.json"
    pool.write_text(json.dumps([{"api_key": "not-a-key"}]))
    import os
    os.environ["API_POOL_FILE"] = str(pool)

    golden: dict = {"source": "THUNLP-MT/StableToolBench " + ((root / ".commit").read_text().strip()
                                                              if (root / ".commit").exists() else ""),
                    "pass_rate": {}, "pass_rate_csv": {}, "preference": {}}
    for model in MODELS:
        golden["pass_rate"][model] = {}
        for times in (3, 4):
            with tempfile.TemporaryDirectory() as tmp:
                save = Path(tmp) / model
                shutil.copytree(data / "pass_rate_results" / model, save)
                printed = run_main(tooleval / "eval_pass_rate.py", [
                    "--converted_answer_path", str(data / "model_predictions_converted"), "--save_path", str(save),
                    "--reference_model", model, "--test_ids", str(ids), "--max_eval_threads", "1",
                    "--evaluate_times", str(times), "--test_set", TEST_SET])
            golden["pass_rate"][model][f"evaluate_times_{times}"] = printed.strip().splitlines()[-2:]
    eval_preference = runpy.run_path(str(tooleval / "eval_preference.py"), run_name="not_main")
    for model in MODELS:
        csv_path = data / "pass_rate_results" / model / f"{TEST_SET}_{model}.csv"
        read = eval_preference["get_pass_rate_results"](str(csv_path))
        golden["pass_rate_csv"][model] = {qid: {"is_solved": row["is_solved"], "modelname": row["modelname"],
                                                "query": row["query"]} for qid, row in read.items()}
    with tempfile.TemporaryDirectory() as tmp:
        save = Path(tmp) / "preference_results"
        shutil.copytree(data / "preference_results", save)
        printed = run_main(tooleval / "eval_preference.py", [
            "--converted_answer_path", str(data / "model_predictions_converted"), "--reference_model", MODELS[0],
            "--output_model", MODELS[1], "--test_ids", str(ids) + "/", "--save_path", str(save),
            "--pass_rate_result_path", str(data / "pass_rate_results"), "--max_eval_threads", "1",
            "--use_pass_rate", "true", "--evaluate_times", "3", "--test_set", TEST_SET])
    golden["preference"] = {"reference": MODELS[0], "candidate": MODELS[1],
                            "printed": [ln for ln in printed.splitlines() if ln.startswith("Test set")]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(golden, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
