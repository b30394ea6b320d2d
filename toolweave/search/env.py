"""The environment a searching assistant acts in: its tools as OpenAI tools plus `Finish`, and a
`step` that checks a call, runs it on an executor and returns ToolBench's observation string.

Status codes are ToolBench's (Downstream_tasks/rapidapi.py): 0 ok, 1 hallucinated function name,
2 invalid arguments, 3 final answer, 4 give up, 5 timeout, 6 not found, 8 unauthorized,
9 too many requests, 12 other error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from toolweave.executors.base import TIMEOUT, Executor, ExecutorUnavailable, Observation
from toolweave.llm.types import CallTag, ChatModel, LLMError
from toolweave.parsing import parse_arguments
from toolweave.prompts import render
from toolweave.schemas import Function, Tool
from toolweave.search import toolbench as tb
from toolweave.toolsets.export import FINISH, finish_function, openai_tools

HALLUCINATED_NAME = "invalid_hallucination_function_name"  # ToolBench's stand-in in the context
_HTTP_CODE = {404: 6, 401: 8, 403: 8, 429: 9}


@dataclass
class StepResult:
    status: str  # ok | hallucinated_function | invalid_arguments | timeout | error | finish_answer | finish_give_up
    observation: str  # what the assistant sees, ToolBench's {"error": ..., "response": ...} JSON text
    status_code: int  # ToolBench's observation code
    finish: str | None = None  # give_answer | give_up_and_restart for Finish calls
    final_answer: str | None = None


def _observation(error: str, response: str = "") -> str:
    return json.dumps({"error": error, "response": response}, ensure_ascii=False)


@dataclass(frozen=True)
class EnvOptions:
    """How the environment checks calls and writes observations. The defaults are toolweave's own;
    the `toolbench` preset sets each to ToolBench's (see the README's Fidelity table)."""

    functions: Literal["openai", "toolbench"] = "openai"  # toolbench: rapidapi.py's function JSON
    argument_check: Literal["schema", "json"] = "schema"  # json: any JSON object goes to the API (ToolBench)
    finish_check: Literal["strict", "toolbench"] = "strict"  # toolbench: only the final_answer key is needed
    name_match: Literal["exact", "endswith"] = "exact"  # endswith: ToolBench's first function ending in the name
    observation_format: Literal["toolweave", "toolbench"] = "toolweave"
    response_limit: int | None = None  # the response text is cut here before the observation (ToolBench: 2048)
    response_mode: Literal["full", "filter"] = "full"  # filter: only the response schema's keys (ToolBench)


class ToolEnv:
    def __init__(self, tools: list[Tool], executor: Executor, *, observation_limit: int = 2048,
                 compress: str = "truncate", llm: ChatModel | None = None, naming: str = "toolbench",
                 options: EnvOptions | None = None, offered: list[tuple[Tool, Function]] | None = None,
                 stage: str = ""):
        """`offered`: the (tool, function) pairs the model is shown, in order (None: every function
        of `tools`); `stage`: the stage its compressing calls are tagged with."""
        if compress not in ("truncate", "llm"):
            raise ValueError(f"compress must be 'truncate' or 'llm', got {compress!r}")
        if compress == "llm" and llm is None:
            raise ValueError("compress='llm' needs a chat model")
        self.tools = {t.id: t for t in tools}
        self.executor = executor
        self.stage = stage
        self.observation_limit = observation_limit
        self.compress = compress
        self.llm = llm
        self.options = options or EnvOptions()
        if self.options.functions == "toolbench":
            pairs = offered if offered is not None else [(t, f) for t in tools for f in t.functions]
            exported = [{"type": "function", "function": tb.toolbench_function(t, f)} for t, f in pairs]
            # later duplicates overwrite earlier ones, as rapidapi.py's api_name_reflect does
            self.mapping = {e["function"]["name"]: (t.id, f.name) for e, (t, f) in zip(exported, pairs)}
        else:
            exported, self.mapping = openai_tools(tools, naming)  # type: ignore[arg-type]
            if offered is not None:
                keep = {(t.id, f.name) for t, f in offered}
                exported = [e for e in exported if self.mapping[e["function"]["name"]] in keep]
                self.mapping = {n: ref for n, ref in self.mapping.items() if ref in keep}
        self.openai_tools = exported + [finish_function()]
        self._validators: dict[str, Any] = {}

    def resolve(self, name: str) -> tuple[Tool, Function] | None:
        """Exported name -> (tool, function); a model's `functions.x` prefix is forgiven. With
        `name_match: endswith` the first offered function whose name ends with `name` is taken."""
        name = (name or "").strip()
        if name not in self.mapping and "." in name:
            name = name.rsplit(".", 1)[-1]
        if self.options.name_match == "endswith":
            name = next((e["function"]["name"] for e in self.openai_tools[:-1]
                         if e["function"]["name"].endswith(name)), name)
        if name not in self.mapping:
            return None
        tid, fname = self.mapping[name]
        tool = self.tools[tid]
        fn = tool.function(fname)
        return (tool, fn) if fn is not None else None

    def validate(self, name: str, fn: Function, args: dict[str, Any]) -> str | None:
        if name not in self._validators:
            try:
                cls = validator_for(fn.parameters)
                cls.check_schema(fn.parameters)
                self._validators[name] = cls(fn.parameters)
            except SchemaError:
                self._validators[name] = None  # the tool's own schema is broken: do not blame the model
        v = self._validators[name]
        if v is None:
            return None
        err = best_match(v.iter_errors(args))
        if err is None:
            return None
        where = "/".join(str(p) for p in err.absolute_path)
        return f"{where + ': ' if where else ''}{err.message}"[:300]

    async def step(self, name: str, arguments: str | dict | None) -> StepResult:
        if name == FINISH:
            if self.options.finish_check == "toolbench":
                return self._toolbench_finish(arguments)
            return self._finish(arguments)
        resolved = self.resolve(name)
        if resolved is None:
            if self.options.observation_format == "toolbench":
                return StepResult("hallucinated_function", self._limit(tb.observation(
                    f"No such function name: {name}", "")), 1)
            return StepResult("hallucinated_function", _observation(f"No such function name: {name}"), 1)
        tool, fn = resolved
        if self.options.argument_check == "json":
            raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
            args = tb.parse_tool_input(raw)
            if args is None:  # ToolBench's server answers this itself, with code 0
                return StepResult("invalid_arguments", self._limit(tb.observation(tb.TOOL_INPUT_ERROR, "")), 0)
            return await self._execute(tool, fn, args)
        args, err = parse_arguments(arguments)
        if args is None:
            return StepResult("invalid_arguments", _observation(f"Invalid arguments: {err}"), 2)
        err = self.validate(name, fn, args)
        if err:
            return StepResult("invalid_arguments", _observation(f"Invalid arguments: {err}"), 2)
        return await self._execute(tool, fn, args)

    async def _execute(self, tool: Tool, fn: Function, args: dict[str, Any]) -> StepResult:
        try:
            obs = await self.executor.execute(tool, fn, args)
        except ExecutorUnavailable:
            raise  # the episode fails and names why; an observation would teach the model noise
        except Exception as e:  # a backend bug is an error observation, never a crashed episode
            obs = Observation(0, "", f"executor failed: {type(e).__name__}: {e}")
        body = await self.shorten(fn, obs.body)
        if self.options.observation_format == "toolbench":
            if self.options.response_mode == "filter":
                body = tb.filter_response(body, fn.response_schema)
            return self._toolbench_result(obs, body)
        if obs.status_code == TIMEOUT or (obs.error or "").startswith("timeout"):
            return StepResult("timeout", self._limit(_observation(obs.error or "timeout", body)), 5)
        if obs.error or not 200 <= obs.status_code < 300:
            error = obs.error or f"HTTP {obs.status_code}"
            return StepResult("error", self._limit(_observation(error, body)), _HTTP_CODE.get(obs.status_code, 12))
        return StepResult("ok", self._limit(_observation("", body)), 0)

    def _finish(self, arguments: str | dict | None) -> StepResult:
        args, err = parse_arguments(arguments)
        if args is None:
            return StepResult("invalid_arguments", _observation(f"Invalid Finish arguments: {err}"), 2)
        kind = args.get("return_type")
        if kind == "give_up_and_restart":
            return StepResult("finish_give_up", '{"response":"chose to give up and restart"}', 4,
                              finish="give_up_and_restart")
        if kind == "give_answer":
            answer = args.get("final_answer")
            if not isinstance(answer, str) or not answer.strip():
                return StepResult("invalid_arguments", _observation('must have "final_answer"'), 2)
            return StepResult("finish_answer", '{"response":"successfully giving the final answer."}', 3,
                              finish="give_answer", final_answer=answer)
        if kind is None:
            return StepResult("invalid_arguments", _observation('must have "return_type"'), 2)
        return StepResult("invalid_arguments", _observation('"return_type" is not a valid choice'), 2)

    def _toolbench_result(self, obs: Observation, body: str) -> StepResult:
        """The server's `{"error", "response"}` (response cut at `response_limit`), written by
        json.dumps and cut at `observation_limit`; the code from the error text, as rapidapi.py does."""
        error = obs.error or ""
        response = body[: self.options.response_limit] if self.options.response_limit else body
        text = self._limit(tb.observation(error, response))
        if obs.status_code == TIMEOUT or error.startswith("timeout"):
            return StepResult("timeout", text, 5)
        return StepResult("error" if error else "ok", text, tb.ERROR_CODES.get(error, 0))

    def _toolbench_finish(self, arguments: str | dict | None) -> StepResult:
        """rapidapi.py's Finish: the same texts and codes; give_answer needs only the final_answer key."""
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        args = tb.parse_finish(raw)
        kind = args.get("return_type")
        if kind is None:
            return StepResult("invalid_arguments", '{error:"must have "return_type""}', 2)
        if kind == "give_up_and_restart":
            return StepResult("finish_give_up", '{"response":"chose to give up and restart"}', 4,
                              finish="give_up_and_restart")
        if kind == "give_answer":
            if "final_answer" not in args:
                return StepResult("invalid_arguments", '{error:"must have "final_answer""}', 2)
            answer = args["final_answer"]
            return StepResult("finish_answer", '{"response":"successfully giving the final answer."}', 3,
                              finish="give_answer",
                              final_answer=answer if isinstance(answer, str) else json.dumps(answer))
        return StepResult("invalid_arguments", '{error:""return_type" is not a valid choice"}', 2)

    def _limit(self, text: str) -> str:
        # ToolBench cuts the whole observation string and marks the cut with "..."
        return text if len(text) <= self.observation_limit else text[: self.observation_limit] + "..."

    async def shorten(self, fn: Function, body: str) -> str:
        """LLM compression of a long body (keeping the schema's fields); truncation is `_limit`'s job."""
        if self.compress != "llm" or len(body) <= self.observation_limit or self.llm is None:
            return body
        fields = sorted(_schema_fields(fn.response_schema)) if fn.response_schema else []
        prompt = render("observation_summary", function=fn.name, fields=", ".join(fields[:50]) or "any",
                        limit=self.observation_limit, observation=body[: self.observation_limit * 8])
        try:
            reply = await self.llm.chat([{"role": "user", "content": prompt}], temperature=0.0,
                                        tag=CallTag(stage=self.stage, role="executor"))
        except LLMError:
            return body  # fall back to truncation
        return reply.content.strip() or body


def _schema_fields(schema: Any, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if isinstance(schema, dict):
        for k, v in (schema.get("properties") or {}).items():
            out.add(k)
            _schema_fields(v, out)
        _schema_fields(schema.get("items"), out)
    return out
