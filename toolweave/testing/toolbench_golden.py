"""Drive toolweave's DFSDT on the scripts recorded from ToolBench's own DFS (tests/data/reference/
toolbench/dfsdt_golden.json.gz, see its SOURCES.md): the same model replies, the same API responses,
under the `toolbench` preset. Used by the parity tests and by scripts/reference/ to export
toolweave's answers for ToolBench's preprocess."""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave.executors import Observation
from toolweave.presets import apply_preset
from toolweave.schemas import Episode, Instruction, Tool
from toolweave.search import solve_instruction
from toolweave.testing.fake_llm import FakeChatModel
from toolweave.toolsets import import_paths
from toolweave.toolsets.naming import api_name, standardize

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "reference" / "toolbench"


@cache
def golden() -> dict[str, Any]:
    with gzip.open(DATA / "dfsdt_golden.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def script(name: str) -> dict[str, Any]:
    return next(s for s in golden()["scripts"] if s["name"] == name)


@cache
def _tools_by_key() -> dict[tuple[str, str], Tool]:
    result = import_paths([str(DATA / "toolenv")])
    if result.rejects:
        raise ValueError(f"reference toolenv rejected: {result.rejects}")
    return {(t.category, standardize(t.name)): t for t in result.tools}


def instruction_for(query_id: int) -> tuple[Instruction, list[Tool]]:
    q = next(q for q in json.loads((DATA / "queries.json").read_text()) if q["query_id"] == query_id)
    tools: list[Tool] = []
    refs = []
    for a in q["api_list"]:
        t = _tools_by_key()[(a["category_name"], standardize(a["tool_name"]))]
        if t not in tools:
            tools.append(t)
        refs.append({"tool": t.id, "function": a["api_name"]})
    return Instruction(id=f"q{query_id}", text=q["query"], tool_ids=[t.id for t in tools],
                       extra={"api_list": refs}), tools


def preset_config() -> RunConfig:
    return RunConfig.model_validate(apply_preset({"preset": "toolbench"}))


def digest(obj: Any) -> str:
    """The recording's digest: sha256 of the JSON (sorted keys), first 20 hex digits."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def toolbench_shape(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """toolweave's tool_calls / tool messages as ToolBench's function_call / function messages."""
    out = []
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "function", "content": m["content"], "name": m["name"]})
            continue
        n = {"role": m["role"], "content": m.get("content")}
        if m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            n["function_call"] = {"name": fn["name"], "arguments": fn["arguments"]}
        out.append(n)
    return out


def as_reply(i: int, message: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"content": message.get("content")}
    if "function_call" in message:
        reply["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": dict(message["function_call"])}]
    return reply


class ScriptedServer:
    """The recorded API responses, in call order, as an executor."""

    def __init__(self, observations: list[list[str]]):
        self.observations = [list(o) for o in observations]
        self.executed: list[list[Any]] = []

    async def execute(self, tool, fn, args):
        self.executed.append([api_name(fn.name), args])
        error, response = self.observations.pop(0)
        return Observation(200, response, error)


def run_script(s: dict[str, Any]) -> tuple[Episode, FakeChatModel, ScriptedServer]:
    cfg = preset_config()
    inst, tools = instruction_for(s["query"])
    llm = FakeChatModel([as_reply(i, m) for i, m in enumerate(s["replies"])])
    server = ScriptedServer(s["observations"])
    ep = asyncio.run(solve_instruction(inst, tools, llm, server, cfg.solve, env_cfg=cfg.executor,
                                       episode_id=s.get("name")))
    return ep, llm, server
