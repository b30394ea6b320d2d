"""Run ToolAlpaca's own dataset builder (build_dataset.py, test_prompt_v1) on scripted instances of one
tool and record its output as a golden file. Imports the checkout given by --toolalpaca; contains none of
its code.

    /tmp/ref/tavenv/bin/python scripts/reference/record_toolalpaca_build_dataset.py \
        --toolalpaca /tmp/ref/toolalpaca --out tests/data/reference/toolalpaca/build_dataset_golden.json

The instances are what ToolAlpaca's generation (agent with train_prompt_v1, langchain) stores:
`intermediate_steps` as [[tool, tool_input, log], observation], the log being the model's text after
"Thought:" (so it starts with a space), `Final Thought` and `output` as its parser splits them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

TOOL_FILE = Path(__file__).parents[2] / "tests/data/toolalpaca/eval_simulated.json"
TOOL = "Axolotl"


def step(tool: str, tool_input: str, thought: str, observation: str) -> list:
    log = f" {thought}\nAction: {tool}\nAction Input: {tool_input}"
    return [[tool, tool_input, log], observation]


DETAILS = step("getDetails", '{"Question": "Which color and size of axolotl do you want pictures of?"}',
               "The user wants axolotl pictures but did not say which color or size.",
               "Wild color, medium size, please.")
SEARCH = step("searchAxolotlImages", '{"color": "wild", "size": "medium"}',
              "I should search the images with the user's criteria.",
              'Status Code: 200. Response: {"results": [{"url": "https://ax.example/1.jpg", "source": "Zoo", '
              '"description": "A wild axolotl"}], "pagination": {"current_page": 1, "total_pages": 1, '
              '"total_results": 1}}')
FACTS_ERR = step("getAxolotlFacts", '{"category": "habitat", "limit": 3}',
                 "Now the habitat facts.",
                 "Status Code: 404. Response: {\"error\": \"not found\"}. You should choose one of: (1) change "
                 "the input and retry; (2) return the 'Final Answer' and explain what happened; (You must "
                 "choose this one when the error occurs more than 3 times.) (3) call another function.")

INSTANCES = [
    {"name": "kept", "input": "Show me some axolotl pictures.\nHint: ask for the color", "intermediate_steps":
     [DETAILS, SEARCH, FACTS_ERR], "Final Thought": "I have the picture but the facts failed.",
     "output": "Here is a wild medium axolotl: https://ax.example/1.jpg (Zoo). Facts were unavailable."},
    {"name": "no_final_thought", "input": "A random axolotl picture?", "intermediate_steps":
     [step("getRandomAxolotlImage", "{}", "Get one.", 'Status Code: 200. Response: {"url": "u"}')],
     "output": "Here: u"},
    {"name": "only_get_details", "input": "Pictures?", "intermediate_steps": [DETAILS],
     "Final Thought": "x", "output": "y"},
    {"name": "no_steps", "input": "Hello", "intermediate_steps": [], "Final Thought": "x", "output": "Hi"},
    {"name": "six_steps", "input": "Many", "intermediate_steps": [SEARCH] * 6, "Final Thought": "x",
     "output": "y"},
    {"name": "five_steps", "input": "Five", "intermediate_steps": [DETAILS, SEARCH, SEARCH, FACTS_ERR, SEARCH],
     "Final Thought": "Done.", "output": "Five results."},
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolalpaca", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.chdir(args.toolalpaca)
    sys.path.insert(0, args.toolalpaca)
    from build_dataset import build_dataset  # noqa: E402  (the reference's own code)

    api = next(t for t in json.loads(TOOL_FILE.read_text()) if t["Name"] == TOOL)
    api = dict(api, Instances=[{k: v for k, v in i.items() if k != "name"} for i in INSTANCES])
    out = build_dataset(api)
    Path(args.out).write_text(json.dumps({"tool": TOOL, "instances": INSTANCES, "build_dataset": out},
                                         ensure_ascii=False, indent=1) + "\n")
    print(f"{len(INSTANCES)} instances -> {len(out)} examples")


if __name__ == "__main__":
    main()
