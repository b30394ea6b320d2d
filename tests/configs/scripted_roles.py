"""One scripted OpenAI-compatible reply function for every LLM role a shipped chain has (the instruction
writer, the DFSDT assistant, the simulated APIs, the judges), where the engine is not what a smoke
run tests: its replies are valid, so every stage after the LLM's has rows to work on."""
from __future__ import annotations

import json
import re

from toolweave.testing.fake_llm import tool_call

GENERATED = "Scripted query: call {api} of {tool} for order 42."
API = re.compile(r'"tool_name": "([^"]+)", "api_name": "([^"]+)"')


def scripted_roles(body: dict) -> str | dict:
    """The instruction writer asks for the first two APIs of its prompt (the toolbench preset drops
    single-API I1 queries); the judges answer Solved / Solvable; the assistant calls one API, then
    Finish; the executor (simulated APIs) gets a plain JSON reply."""
    names = [t["function"]["name"] for t in body.get("tools") or []]
    prompt = str(body["messages"][-1].get("content")).rpartition("Now the APIs for you:")[2]  # past the examples
    if '"queries"' in prompt or "related apis" in prompt:
        apis = list(dict.fromkeys(API.findall(prompt)))[:2]
        if apis:
            tool, name = apis[0]
            return json.dumps({"queries": [{"query": GENERATED.format(api=name, tool=tool),
                                            "related apis": [list(a) for a in apis]}]})
    if "check_answer_status" in names or "parse_answer_status" in names:
        return {"tool_calls": [tool_call(names[0], {"answer_status": "Solved", "reason": "scripted"})]}
    if "check_task_solvable" in names:
        return {"tool_calls": [tool_call(names[0], {"task_status": "Solvable", "reason": "scripted"})]}
    if "Finish" in names:
        apis = [n for n in names if n != "Finish"]
        if apis and not any(m.get("role") == "tool" for m in body["messages"]):
            return {"tool_calls": [tool_call(apis[0], {})]}
        return {"tool_calls": [tool_call("Finish", {"return_type": "give_answer", "final_answer": "Done: 42."})]}
    return '{"error": "", "response": "scripted"}'
