import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from toolweave.config import InstructionsConfig
from toolweave.authoring.instructions import (ApiSample, assign_splits, dedupe_instructions, import_toolbench_queries,
                                    instruction_id, load_seeds, sample_api_groups, toolalpaca_instructions,
                                    toolbench_instructions)
from toolweave.schemas import FunctionRef, Instruction, Reject, Tool
from toolweave.testing.fake_llm import FakeChatModel
from toolweave.toolsets.toolalpaca import import_toolalpaca

DATA = Path(__file__).parents[1] / "data"
STB_G1 = DATA / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"
TB_QUERIES = DATA / "toolbench" / "data_example" / "instruction"


@pytest.fixture(scope="module")
def stb():
    return import_toolbench_queries(STB_G1, stage="instructions")


@pytest.fixture(scope="module")
def axolotl() -> Tool:
    doc = json.loads((DATA / "toolalpaca" / "eval_simulated.json").read_text())
    result = import_toolalpaca(doc, "eval_simulated.json")
    return next(t for t in result.tools if t.name == "Axolotl")


# --- ToolAlpaca --------------------------------------------------------------------------------

def test_toolalpaca_instructions_keep_hidden_details_and_known_functions(axolotl):
    reply = {"instructions": [
        {"instruction": "Show me a random axolotl picture for my niece.", "hidden_details": "She likes albino ones.",
         "functions": ["getRandomAxolotlImage", "inventedFunction"]},
        {"instruction": "", "hidden_details": "nothing"},
        {"instruction": "Give me 3 facts about axolotl habitats.", "hidden_details": "For a school report due Friday.",
         "functions": ["getAxolotlFacts"]},
        {"instruction": "One too many.", "hidden_details": ""},
    ]}
    llm = FakeChatModel([json.dumps(reply)])
    out = asyncio.run(toolalpaca_instructions(axolotl, llm, InstructionsConfig(per_tool=2), rng=random.Random(0),
                                              stage="instructions_2"))

    instrs = [o for o in out if isinstance(o, Instruction)]
    rejects = [o for o in out if isinstance(o, Reject)]
    assert [i.text for i in instrs] == ["Show me a random axolotl picture for my niece.",
                                        "Give me 3 facts about axolotl habitats."]
    assert instrs[0].hidden_details == "She likes albino ones." and instrs[0].mode == "single"
    assert instrs[0].relevant_functions == [FunctionRef(tool=axolotl.id, function="getRandomAxolotlImage")]
    assert instrs[0].tool_ids == [axolotl.id]
    assert instrs[0].id == instruction_id("single", instrs[0].text)
    assert len(rejects) == 1 and "without an instruction" in rejects[0].reason
    assert rejects[0].stage == "instructions_2" and llm.requests[0]["tag"].stage == "instructions_2"  # the worker's
    req = llm.requests[0]
    assert req["json_schema"]["required"] == ["instructions"]
    assert "searchAxolotlImages" in req["messages"][0]["content"]  # the NL documentation is in the prompt


def test_toolalpaca_instructions_reject_garbage(axolotl):
    llm = FakeChatModel(["I would love to help but here are none."])
    out = asyncio.run(toolalpaca_instructions(axolotl, llm, InstructionsConfig(), rng=random.Random(0),
                                              stage="instructions"))
    assert len(out) == 1 and isinstance(out[0], Reject)
    assert axolotl.id in out[0].reason and "unusable" in out[0].reason


# --- ToolBench sampling ------------------------------------------------------------------------

def test_sample_api_groups_respects_modes_and_limits(stb):
    tools = stb[0]
    by_id = {t.id: t for t in tools}
    sports = sorted(t.id for t in tools if t.category == "Sports")[:6]
    cfg = InstructionsConfig(samples_per_mode=20, collections={"ball_games": sports, "too_small": sports[:1]})
    samples = sample_api_groups(tools, cfg, rng=random.Random(1))
    assert Counter(s.mode for s in samples) == {"I1": 20, "I2": 20, "I3": 20}
    for s in samples:
        assert all(1 <= len(t.functions) <= cfg.max_apis_per_tool for t in s.tools)
        for t in s.tools:  # sampled functions really belong to the tool
            assert {f.name for f in t.functions} <= {f.name for f in by_id[t.id].functions}
        if s.mode == "I1":
            assert len(s.tools) == 1 and s.group == s.tools[0].id
            assert len(s.tools[0].functions) >= min(2, len(by_id[s.group].functions))
        else:
            assert 2 <= len(s.tools) <= 5 and len({t.id for t in s.tools}) == len(s.tools)
        if s.mode == "I2":
            assert {t.category for t in s.tools} == {s.group}
        if s.mode == "I3":
            assert s.group == "ball_games" and {t.id for t in s.tools} <= set(sports)
    again = sample_api_groups(tools, cfg, rng=random.Random(1))
    assert [s.id for s in again] == [s.id for s in samples]


def test_sample_api_groups_without_collections_skips_i3(stb):
    samples = sample_api_groups(stb[0], InstructionsConfig(samples_per_mode=3), rng=random.Random(0))
    assert Counter(s.mode for s in samples) == {"I1": 3, "I2": 3}


# --- ToolBench generation ----------------------------------------------------------------------

def _two_tool_sample(stb) -> ApiSample:
    tools = {t.id: t for t in stb[0]}
    a, b = tools["theclique"], next(t for t in stb[0] if t.category == "Sports" and t.id != "theclique")
    return ApiSample("I2", "Sports", [a.model_copy(update={"functions": a.functions[:2]}),
                                      b.model_copy(update={"functions": b.functions[:1]})])


def test_toolbench_instructions_filter_related_apis(stb):
    sample = _two_tool_sample(stb)
    a, b = sample.tools
    queries = {"queries": [
        {"query": "Look up Lionel Messi on Transfermarkt and tell me more.",
         "related apis": [[a.name, a.functions[0].name], [b.name, b.functions[0].name]]},
        {"query": "Only one API here.", "related apis": [[a.name, a.functions[0].name]]},
        {"query": "Uses an API nobody sampled.", "related apis": [[a.name, "Delete Everything"], [b.name, b.functions[0].name]]},
        {"query": "", "related apis": []},
        {"query": "Named the ToolBench way.",
         "related apis": [["TheClique", f"{a.functions[1].name.lower().replace(' ', '_')}_for_theclique"],
                          {"tool_name": b.name, "api_name": b.functions[0].name}]},
    ]}
    llm = FakeChatModel(["Here you go:\n```json\n" + json.dumps(queries) + "\n```"])
    seeds = load_seeds()
    cfg = InstructionsConfig()
    out = asyncio.run(toolbench_instructions(sample, llm, seeds, cfg, rng=random.Random(3), stage="instructions"))

    kept = [o for o in out if isinstance(o, Instruction)]
    rejects = [o for o in out if isinstance(o, Reject)]
    assert [i.text for i in kept] == ["Look up Lionel Messi on Transfermarkt and tell me more.", "Named the ToolBench way."]
    assert kept[0].mode == "I2" and kept[0].tool_ids == [a.id, b.id]
    assert kept[0].relevant_functions == [FunctionRef(tool=a.id, function=a.functions[0].name),
                                          FunctionRef(tool=b.id, function=b.functions[0].name)]
    assert kept[1].relevant_functions[0] == FunctionRef(tool=a.id, function=a.functions[1].name)
    assert len(kept[0].extra["api_list"]) == 3
    reasons = " | ".join(r.reason for r in rejects)
    assert "needs at least 2" in reasons and "not in the sampled set: TheClique/Delete Everything" in reasons
    assert "without a query" in reasons and len(rejects) == 3

    prompt = llm.requests[0]["messages"][0]["content"]
    assert prompt.count("Answer: {") == cfg.num_seed_examples  # 3 seed examples in context
    assert llm.requests[0]["json_schema"]["required"] == ["queries"]


def test_toolbench_instructions_survive_garbage(stb):
    llm = FakeChatModel(["queries: none, sorry {"])
    out = asyncio.run(toolbench_instructions(_two_tool_sample(stb), llm, load_seeds(), InstructionsConfig(),
                                             rng=random.Random(0), stage="instructions"))
    assert len(out) == 1 and isinstance(out[0], Reject) and "unusable" in out[0].reason


def test_seed_set_is_well_formed():
    seeds = load_seeds()
    assert len(seeds) >= 10 and {s["mode"] for s in seeds} == {"I1", "I2", "I3"}
    for s in seeds:
        offered = {(a["tool_name"], a["api_name"]) for a in s["api_list"]}
        assert s["query"] and {tuple(p) for p in s["related apis"]} <= offered


# --- dedupe and splits -------------------------------------------------------------------------

def _ins(text, tools, mode="I1"):
    return Instruction(id=instruction_id(mode, text), mode=mode, text=text, tool_ids=tools,
                       relevant_functions=[FunctionRef(tool=t, function="f") for t in tools])


def test_dedupe_ignores_case_punctuation_and_spacing():
    a, b, c = _ins("Find flights to Oslo!", ["x"]), _ins("find  flights to oslo", ["x"]), _ins("Find hotels", ["x"])
    kept, rejects = dedupe_instructions([a, b, c], stage="instructions")
    assert kept == [a, c]
    assert len(rejects) == 1 and b.id in rejects[0].reason and a.id in rejects[0].reason


def test_assign_splits_holds_out_categories_tools_and_instructions(stb):
    tools, instrs, _ = stb
    cfg = InstructionsConfig(holdout={"test_inst": 0.2, "test_tool": 0.1, "test_cat": 0.1})
    out = assign_splits(instrs, tools, cfg, seed=7)
    assert [i.id for i in out] == [i.id for i in instrs]
    assert assign_splits(instrs, tools, cfg, seed=7) == out  # deterministic
    assert assign_splits(instrs, tools, cfg, seed=8) != out
    category = {t.id: t.category for t in tools}
    split = {i.id: i.split for i in out}
    cat_held = {category[t] for i in out if i.split == "test_cat" for t in i.tool_ids}
    tool_held = {t for i in out if i.split == "test_tool" for t in i.tool_ids}
    for i in out:
        cats = {category[t] for t in i.tool_ids}
        if cats & cat_held:
            assert split[i.id] == "test_cat"  # a held-out category never reaches training
        elif set(i.tool_ids) & tool_held:
            assert split[i.id] == "test_tool"
    counts = Counter(split.values())
    assert set(counts) == {"train", "test_inst", "test_tool", "test_cat"}
    assert counts["test_inst"] == round(0.2 * (len(out) - counts["test_cat"] - counts["test_tool"]))
    assert not cat_held & {category[t] for i in out if i.split == "train" for t in i.tool_ids}


# --- ToolBench query files ---------------------------------------------------------------------

@pytest.mark.parametrize("name, mode", [("G1_query.json", "I1"), ("G2_query.json", "I2"), ("G3_query.json", "I3")])
def test_import_toolbench_queries(name, mode):
    raw = json.loads((TB_QUERIES / name).read_text())
    tools, instrs, rejects = import_toolbench_queries(TB_QUERIES / name, stage="instructions")
    assert not rejects and len(instrs) == len(raw)
    by_id = {t.id: t for t in tools}
    for q, ins in zip(raw, instrs):
        assert ins.mode == mode and ins.text == q["query"] and ins.extra["query_id"] == q["query_id"]
        assert [(by_id[r.tool].name, r.function) for r in ins.relevant_functions] == [tuple(p) for p in q["relevant APIs"]]
        assert all(by_id[r.tool].function(r.function) for r in ins.relevant_functions)


def test_import_stabletoolbench_queries(stb):
    tools, instrs, rejects = stb
    assert (len(tools), len(instrs), len(rejects)) == (154, 163, 0)
    first = next(i for i in instrs if i.extra["query_id"] == 588)
    assert first.relevant_functions == [FunctionRef(tool="theclique", function="Transfermarkt search"),
                                        FunctionRef(tool="theclique", function="Transfermarkt details")]


def test_import_rejects_a_query_whose_relevant_api_is_missing(tmp_path):
    raw = json.loads((TB_QUERIES / "G1_query.json").read_text())
    raw[1]["relevant APIs"].append(["Nope Tool", "Nope API"])
    del raw[2]["query"]
    path = tmp_path / "G1_broken.json"
    path.write_text(json.dumps(raw))
    tools, instrs, rejects = import_toolbench_queries(path, stage="instructions")
    assert len(instrs) == len(raw) - 2
    reasons = sorted(r.reason for r in rejects)
    assert any("Nope Tool/Nope API" in r and f"query {raw[1]['query_id']}" in r for r in reasons)
    assert any("needs 'query'" in r for r in reasons)
    bad = tmp_path / "G1_bad.json"
    bad.write_text("{not json")
    assert import_toolbench_queries(bad, stage="instructions")[2][0].reason.startswith(f"query file {bad}")


def test_sampling_with_tight_limits(stb):
    cfg = InstructionsConfig(samples_per_mode=5, max_apis_per_tool=1, min_tools=5, max_tools=5,
                             collections={"pair": [t.id for t in stb[0][:2]]})
    samples = sample_api_groups(stb[0], cfg, rng=random.Random(2))
    assert Counter(s.mode for s in samples) == {"I1": 5, "I2": 5, "I3": 5}
    assert all(len(t.functions) == 1 for s in samples for t in s.tools)
    assert all(len(s.tools) == 2 for s in samples if s.mode == "I3")  # only 2 tools in the collection
