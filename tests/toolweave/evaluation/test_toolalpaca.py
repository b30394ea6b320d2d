import asyncio
import json
from pathlib import Path

from toolweave.evaluation.answers import Answer
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.toolalpaca import AlpacaCase, evaluate_toolalpaca, golden_answers, standard_text, summarize
from toolweave.schemas import Instruction, Tool
from toolweave.testing.fake_llm import FakeChatModel, tool_call

EVAL = Path(__file__).parents[2] / "data" / "toolalpaca" / "eval_simulated.json"


def test_golden_answers_from_the_real_eval_set():
    item = json.loads(EVAL.read_text())[0]  # Axolotl
    tool = Tool(id="axolotl", name=item["Name"], extra={"Instructions": item["Instructions"],
                                                         "Golden_Answers": item["Golden_Answers"]})
    ins = Instruction(id="i1", text=item["Instructions"][1], tool_ids=["axolotl"])
    gold = golden_answers(ins, {"axolotl": tool})
    assert gold == item["Golden_Answers"][1] and gold[0]["Action"] == "searchAxolotlImages"
    assert standard_text(gold).startswith("1. Function: searchAxolotlImages\nParameters: {")
    assert golden_answers(Instruction(id="x", text="unrelated", tool_ids=["axolotl"]), {"axolotl": tool}) is None


def test_correctness_labels_and_overall():
    def handler(req):
        sol = req["messages"][0]["content"].split("## AI Assistant's Solution")[1]
        ok = "searchAxolotlImages" in sol
        args = {"analysis": "compared", "process_correctness": "Yes" if ok else "No",
                "final_response_correctness": "Yes" if ok else "Uncertain"}
        return {"content": None, "tool_calls": [tool_call("report_correctness", args)]}

    judge = Judge(FakeChatModel(handler=handler))
    step = lambda name: [{"name": name, "arguments": '{"color": "wild"}', "response": "[...]"}]
    cases = [AlpacaCase(Answer("a", "q", True, "Here are pictures", step("searchAxolotlImages")), "q", "doc", []),
             AlpacaCase(Answer("b", "q", True, "Here is a fact", step("getAxolotlFacts")), "q", "doc", []),
             AlpacaCase(Answer("c", "q", True, "I could not", []), "q", "doc", [])]
    res = asyncio.run(evaluate_toolalpaca(cases, judge))
    assert [(r["process"], r["response"], r["overall"]) for r in res] == [
        ("Yes", "Yes", True), ("No", "Uncertain", False), ("No", "No", False)]
    assert res[2]["judged"] is False  # no tool call at all: an error, not judged
    s = summarize(res)
    assert s["process"] == {"Yes": 1, "No": 2, "Uncertain": 0} and abs(s["overall_rate"] - 1 / 3) < 1e-9
