"""ToolAlpaca's evaluation files (`data/eval_real.json`, `eval_simulated.json`) as evaluation inputs, read
as ToolAlpaca's `evaluation.py` reads them: one case per entry of a tool's `Instructions`, its question id
the position there, its golden action sequence `Golden_Answers[id]` (or the same position of a separate
golden file, zipped with the tools by position as `-gold` does), the documentation its judge is shown
the tool's `NLDocumentation` (the imported tool's `nl_documentation`).

Each case becomes a test Instruction of the imported tool, with the golden sequence in
`extra["golden_answers"]` (what the evaluate stage's ToolAlpaca scoring reads) and `extra["toolalpaca_eval"]`
naming the file, tool and question id; the tool's own `extra["toolalpaca_eval"]` names the file. A case
whose tool is not imported, or without a golden sequence, is a Reject naming the file, tool and question id.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from toolweave.schemas import Instruction, Reject, Split, Tool
from toolweave.toolsets.common import DocumentError, make_reject, read_document
from toolweave.toolsets.toolalpaca import import_toolalpaca, is_toolalpaca

EVAL_TOOL_MARK = "toolalpaca_eval"  # the key of an imported tool's `extra` naming its evaluation file


def is_eval_tool(tool: Tool) -> bool:
    return bool(tool.extra.get(EVAL_TOOL_MARK))


def tool_name(item: dict[str, Any]) -> str:
    return str(item.get("Name", item.get("API")))  # evaluation.py: api_info.get("Name", api_info.get("API"))


def case_id(path: str | Path, name: str, ques_id: int) -> str:
    digest = hashlib.sha256(f"{Path(path).name}\0{name}\0{ques_id}".encode()).hexdigest()[:10]
    return f"toolalpaca-eval-{digest}-{ques_id}"


def import_eval_file(path: str | Path, golden_path: str | Path | None = None, split: Split = "test_tool"
                     ) -> tuple[list[Tool], list[Instruction], list[Reject]]:
    """(tools, one Instruction per evaluated question, rejects) of a ToolAlpaca evaluation file."""
    try:
        doc = read_document(path)
        golden_doc = read_document(golden_path) if golden_path else None
    except DocumentError as e:
        raise ValueError(str(e)) from None
    if not is_toolalpaca(doc):
        raise ValueError(f"{path}: not a ToolAlpaca evaluation file (a list of tools with Instructions)")
    if golden_doc is not None:  # evaluation.py: zip(api_data, golden_answer), by position
        if not isinstance(golden_doc, list):
            raise ValueError(f"{golden_path}: expected a list of tools with Golden_Answers")
        doc = [{**item, "Golden_Answers": gold.get("Golden_Answers")} if isinstance(gold, dict) else item
               for item, gold in zip(doc, golden_doc)] + doc[len(golden_doc):]
    imported = import_toolalpaca(doc, path)
    for t in imported.tools:  # what keeps generation off it: the evaluation asks about unseen tools
        t.extra[EVAL_TOOL_MARK] = Path(path).name
    tools = {t.name: t for t in imported.tools}
    instructions: list[Instruction] = []
    rejects = list(imported.rejects)
    for item in doc:
        if not isinstance(item, dict):
            continue  # the tool import rejected it already
        name = tool_name(item)
        tool = tools.get(name)
        golden = item.get("Golden_Answers") if isinstance(item.get("Golden_Answers"), list) else []
        for ques_id, text in enumerate(item.get("Instructions") or []):
            where = f"tool {name!r} question {ques_id}"
            if tool is None:
                rejects.append(make_reject(path, where, "its tool was not imported (see the tool's reject)"))
                continue
            gold = golden[ques_id] if ques_id < len(golden) else None
            if not isinstance(gold, list) or not all(isinstance(g, dict) and "Action" in g for g in gold):
                rejects.append(make_reject(path, where, "no golden action sequence (Golden_Answers[id] is "
                                                        "missing or not a list of {Action, Action_Input})", gold))
                continue
            if not isinstance(text, str) or not text.strip():
                rejects.append(make_reject(path, where, "the instruction is not a non-empty string", text))
                continue
            instructions.append(Instruction(
                id=case_id(path, name, ques_id), source=f"toolalpaca-eval:{Path(path).name}", text=text,
                tool_ids=[tool.id], split=split,
                extra={"golden_answers": gold, "toolalpaca_eval": {"file": Path(path).name, "tool": name,
                                                                   "id": ques_id}}))
    return list(tools.values()), instructions, rejects
