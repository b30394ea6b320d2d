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
    if (reply := scripted_toolalpaca(body)) is not None:
        return reply
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
    if "report_correctness" in names:  # ToolAlpaca's judge (configs/toolalpaca_eval.yaml)
        return {"tool_calls": [tool_call(names[0], {"analysis": "scripted", "process_correctness": "Yes",
                                                    "final_response_correctness": "Yes"})]}
    if "check_task_solvable" in names:
        return {"tool_calls": [tool_call(names[0], {"task_status": "Solvable", "reason": "scripted"})]}
    if "Finish" in names:
        apis = [n for n in names if n != "Finish"]
        if apis and not any(m.get("role") == "tool" for m in body["messages"]):
            return {"tool_calls": [tool_call(apis[0], {})]}
        return {"tool_calls": [tool_call("Finish", {"return_type": "give_answer", "final_answer": "Done: 42."})]}
    return '{"error": "", "response": "scripted"}'


# --- ToolAlpaca's roles (configs/toolalpaca.yaml: the toolalpaca preset's prompts) -------------

INTRO = """Introduction: A scripted API that looks up orders by their number for shops and their customers.
Functions:
1. Name: getOrder
   Description: Get an order by its number.
   Input: {"order_id": "Required. integer. The order number."}
   Output: The order's status and items."""

OPENAPI = {"openapi": "3.0.0", "info": {"title": "{name}", "version": "1.0", "description": "Scripted order lookup."},
           "servers": [{"url": "https://example.com/api"}],
           "paths": {"/orders/{order_id}": {"get": {
               "operationId": "getOrder", "summary": "Get an order by its number.",
               "parameters": [{"name": "order_id", "in": "path", "description": "The order number.", "required": True,
                               "schema": {"type": "integer"}}],
               "responses": {"200": {"description": "The order.", "content": {"application/json": {"schema": {
                   "type": "object", "properties": {"status": {"type": "string", "description": "Its status."}}}}}}}}}}}
FUNCTION = re.compile(r"one of \[([^\]]+)\]")


def scripted_toolalpaca(body: dict) -> str | dict | None:
    """A reply for a ToolAlpaca-style prompt, or None for the other roles."""
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    last = str(body["messages"][-1].get("content"))
    if "Answer in exactly this layout:" in text:
        return INTRO
    if "OpenAPI document (JSON):" in last:
        name = re.search(r"Name: (.+)", last).group(1).strip()
        return json.dumps({**OPENAPI, "info": {**OPENAPI["info"], "title": name}})
    if '"instructions": [' in text:
        return json.dumps({"instructions": [{"instruction": "What is the status of my order 42?",
                                             "hidden_details": "", "functions": ["getOrder"]}]})
    if "As an API simulator" in text:
        return 'Status Code: 200. Response: {"status": "shipped"}\nExplanation: scripted.'
    if "Action Input:" in text and (fn := FUNCTION.search(text)):
        if "Observation:" in last or any(m.get("role") == "tool" for m in body["messages"]):
            return "Thought: I now know the final answer\nFinal Answer: Order 42 is shipped."
        name = [n.strip() for n in fn.group(1).split(",") if n.strip() != "getDetails"][0]
        return f'Thought: I look the order up.\nAction: {name}\nAction Input: {{"order_id": 42}}'
    return None
