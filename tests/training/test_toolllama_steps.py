"""ToolLLaMA SFT data (`sft.format: toolllama_steps`) equals ToolBench's own preprocess output.

tests/data/reference/toolbench/preprocess_golden.json.gz holds what ToolBench's
`preprocess/preprocess_toolllama_data.py` made of (a) ToolBench's own answer files for the 101
recorded DFSDT runs with valid data and (b) toolweave's exports of the same runs solved under the
`toolbench` preset (see tests/data/reference/SOURCES.md).
"""
import gzip
import hashlib
import json
from functools import cache
from pathlib import Path

import pytest

from toolweave.config import SFTConfig
from toolweave.converters.toolbench import episode_to_toolbench_answer
from toolweave.schemas import Episode
from toolweave.testing.toolbench_golden import golden, run_script
from training.formats import RenderError
from training.sft_data import build
from training.tokenize import IGNORE, trained_text
from training.toolllama_steps import render_conversation, toolllama_examples

GOLDEN = Path(__file__).parents[1] / "data" / "reference" / "toolbench" / "preprocess_golden.json.gz"
FILE = "{}_DFS_woFilter_w2.json"


@cache
def preprocess_golden():
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as f:
        return json.load(f)


@cache
def episodes():
    return {s["name"]: run_script(s)[0] for s in golden()["scripts"] if s["valid_data"]}


def test_toolbench_preprocess_reads_toolweave_exports_without_crashing_and_makes_the_same_examples():
    g = preprocess_golden()
    assert len(g["toolbench_answers"]) == 101 and g["toolweave_answers"].keys() == g["toolbench_answers"].keys()
    assert not [k for k, v in g["toolweave_answers"].items() if isinstance(v, dict) and "crash" in v]
    assert g["toolweave_answers"] == g["toolbench_answers"]
    assert sum(len(v) for v in g["toolbench_answers"].values()) == 393  # one example per step with a call


def test_toolweave_export_is_still_what_was_recorded():
    recorded = preprocess_golden()["toolweave_export_sha256"]
    for name, ep in episodes().items():
        text = json.dumps(episode_to_toolbench_answer(ep), indent=2)
        assert hashlib.sha256(text.encode()).hexdigest()[:20] == recorded[FILE.format(name)], name


def test_toolllama_steps_are_toolbench_preprocess_output():
    expected = preprocess_golden()["toolbench_answers"]
    for name, ep in episodes().items():
        assert toolllama_examples(ep) == expected[FILE.format(name)], name


def test_steps_train_only_their_own_reply(base_tokenizer):
    ep = episodes()["thought_turns_give_up_then_answer"]
    records, rejects, stats = build([ep], base_tokenizer, SFTConfig(format="toolllama_steps", pack=False,
                                                                     max_len=16384, splits=[]))
    examples = toolllama_examples(ep)
    assert not rejects and stats["examples"] == len(examples) == 3
    for rec, ex in zip(records, examples):
        labels = [IGNORE] + rec.labels[1:]
        last = ex["conversations"][-1]["value"]
        assert trained_text(base_tokenizer, rec.input_ids, labels) == last + base_tokenizer.eos_token
        # a call's own thought is dropped; a thought-only turn before it is carried in
        assert "\nAction: " in last and not any(t in last for t in ("Try it.", "Again.", "Done."))
    assert examples[1]["conversations"][-1]["value"].startswith("\nThought: Still thinking.\nAction: ")
    text = "".join(s.text for s in render_conversation(examples[0]["conversations"], "</s>"))
    assert text.startswith("System: You are AutoGPT") and "\nUser: \n" in text and text.endswith("</s>")
    assert "Specifically, you have access to the following APIs: [{'name': " in text


def test_an_episode_without_toolbench_system_sentence_is_rejected_with_the_reason(base_tokenizer):
    ep = episodes()["thought_turns_give_up_then_answer"]
    other = Episode(**{**ep.model_dump(), "messages": [{"role": "system", "content": "Be helpful."}] + ep.messages[1:]})
    records, rejects, _ = build([other], base_tokenizer, SFTConfig(format="toolllama_steps", splits=[]))
    assert not records and "with a function call to actually excute your step." in rejects[0].reason
    with pytest.raises(RenderError):
        toolllama_examples(other)
