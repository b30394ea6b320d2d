"""Shared set-up of the ToolEval recordings (record_tooleval_*.py): arguments, the reference's
tooleval folder on sys.path, an API pool file (OpenaiPoolRequest needs one; the key is a dummy),
and a scripted verdict shaped like an old openai ChatCompletion reply. None of ToolBench's code."""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import types
from pathlib import Path


def setup(default_seeds: int) -> tuple[argparse.Namespace, Path, Path]:
    """(arguments, checkout root, its toolbench/tooleval folder), ready to import from."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolbench", required=True)
    ap.add_argument("--seeds", type=int, default=default_seeds)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    root = Path(a.toolbench).resolve()
    tooleval = root / "toolbench" / "tooleval"
    sys.path[:0] = [str(tooleval)]
    pool = Path(tempfile.mkdtemp()) / "api_pool.json"
    pool.write_text(json.dumps([{"api_key": "not-a-key"}]))
    os.environ["API_POOL_FILE"] = str(pool)
    return a, root, tooleval


def install_openai(state: dict, verdict_for) -> None:
    """A stand-in `openai` module: ChatCompletion.create keeps the request in state["requests"] and
    answers `verdict_for(function name, prompt text)` as a forced function call."""
    openai = types.ModuleType("openai")

    class ChatCompletion:
        @staticmethod
        def create(messages, **kwargs):
            kwargs.pop("api_key", None)
            state["requests"].append({"messages": copy.deepcopy(messages), **copy.deepcopy(kwargs)})
            return reply(verdict_for(kwargs["function_call"]["name"], messages[0]["content"]))

    openai.ChatCompletion = ChatCompletion
    sys.modules["openai"] = openai


def reply(verdict: dict) -> types.SimpleNamespace:
    msg = types.SimpleNamespace(function_call=types.SimpleNamespace(arguments=json.dumps(verdict)), content="")
    return types.SimpleNamespace(choices=[types.SimpleNamespace(message=msg)])


def commit_of(root: Path) -> str:
    return (root / ".commit").read_text().strip() if (root / ".commit").exists() else ""
