"""APIGen's three checks on an episode before it is trained on, and the rule sft_data selects by.

- format: every call names a function the episode offered, its arguments are a JSON object (strict
  JSON: the data teaches the model to write it) that validates against that function's JSON Schema,
  and the episode ends with a final answer (or, for `verify.clarify_methods`, a clarifying question);
- execution: every well-formed call came back without an error status (ToolBench's observation
  `{"error": ..., "response": ...}`, which every executor's result is turned into);
- semantic: ToolEval's `check_answer_status` judge (with `parse_answer_status` when Unsure), asked
  `votes` times; the share of Solved votes must reach `min_solved_votes`.

Each check's outcome is a pass flag, a reason code (`unknown_function: ...`) and the list of every
problem found, recorded as declared columns of a `VerifiedEpisode` (the episode plus those columns),
so every row that reaches training carries the scores that let it through.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for

from toolweave.config import RunConfig, VerifyConfig
from toolweave.evaluation.answers import from_episode
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.labels import AnswerStatus
from toolweave.evaluation.pass_rate import answer_status
from toolweave.schemas import Episode, VerifiedEpisode
from toolweave.solving.simulate import asks_user
from toolweave.toolsets.export import FINISH, finish_function

CHECKS = ("format", "execution", "semantic")


@dataclass
class CheckResult:
    passed: bool
    problems: list[str] = field(default_factory=list)  # "code: detail", first one is the reason
    score: float | None = None
    votes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return self.problems[0] if self.problems else ""

    @property
    def code(self) -> str:
        return self.reason.split(":", 1)[0]


# --- the episode's calls ----------------------------------------------------------------------

@dataclass
class Call:
    name: str
    arguments: Any  # the raw text (or object) the model wrote
    observation: str | None  # the tool message that answered it


def episode_calls(ep: Episode) -> list[Call]:
    """Assistant tool calls in order, each with the tool message that answered it."""
    answers = {m.get("tool_call_id"): str(m.get("content") or "") for m in ep.messages if m.get("role") == "tool"}
    calls = []
    for m in ep.messages:
        if m.get("role") == "assistant":
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                calls.append(Call(str(fn.get("name") or ""), fn.get("arguments"), answers.get(c.get("id"))))
    return calls


def offered_schemas(ep: Episode) -> dict[str, dict[str, Any]]:
    """Function name -> parameters schema, as the assistant saw them. Finish is always known: the
    simulations do not offer it (ToolAlpaca ends on a plain answer) but honour it."""
    out = {FINISH: finish_function()["function"]["parameters"]}
    for t in ep.tools:
        fn = t.get("function", t) if isinstance(t, dict) else {}
        if isinstance(fn, dict) and fn.get("name"):
            out[str(fn["name"])] = fn.get("parameters") or {"type": "object"}
    return out


def _arguments(raw: Any) -> tuple[dict | None, str]:
    if isinstance(raw, dict):
        return raw, ""
    if not isinstance(raw, str):
        return None, f"arguments are {type(raw).__name__}, not JSON text"
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as e:
        return None, f"arguments are not valid JSON ({e.msg} at column {e.colno})"
    return (value, "") if isinstance(value, dict) else (None, f"arguments are a JSON {type(value).__name__}")


def schema_problem(schema: dict[str, Any], args: dict[str, Any]) -> tuple[str, str] | None:
    """(code, detail) of the most relevant violation, or None. A broken schema blames no one."""
    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
    except SchemaError:
        return None
    err = best_match(cls(schema).iter_errors(args))
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path)
    code = "missing_required" if err.validator == "required" else "schema_violation"
    return code, f"{where + ': ' if where else ''}{err.message}"[:300]


def _finish_answer(call: Call) -> str | None:
    args, _ = _arguments(call.arguments)
    if args and args.get("return_type") == "give_answer" and str(args.get("final_answer") or "").strip():
        return str(args["final_answer"])
    return None


def ends_with_answer(ep: Episode) -> bool:
    """A Finish(give_answer) as the last call, or (simulations) a last assistant message with text."""
    if ep.status != "answered" or not ep.final_answer.strip():
        return False
    calls = episode_calls(ep)
    if calls and calls[-1].name == FINISH:
        return _finish_answer(calls[-1]) is not None
    last = next((m for m in reversed(ep.messages) if m.get("role") == "assistant"), None)
    return bool(last and not last.get("tool_calls") and str(last.get("content") or "").strip())


def gave_answer_by_finish(ep: Episode) -> bool:
    """ToolBench's rule: the path ends on Finish with return_type give_answer."""
    calls = episode_calls(ep)
    return ep.status == "answered" and bool(calls) and calls[-1].name == FINISH and \
        _finish_answer(calls[-1]) is not None


# --- the three checks ----------------------------------------------------------------------

def check_format(ep: Episode, cfg: VerifyConfig) -> CheckResult:
    schemas = offered_schemas(ep)
    problems = []
    calls = episode_calls(ep)
    for i, call in enumerate(calls, 1):
        if call.name not in schemas:
            problems.append(f"unknown_function: call {i} names {call.name!r}, not one of the episode's tools")
            continue
        args, why = _arguments(call.arguments)
        if args is None:
            problems.append(f"invalid_arguments: call {i} ({call.name}): {why}")
            continue
        bad = schema_problem(schemas[call.name], args)
        if bad:
            problems.append(f"{bad[0]}: call {i} ({call.name}): {bad[1]}")
    if cfg.require_call and not any(c.name != FINISH for c in calls):
        problems.append("no_tool_call: the episode calls no tool")
    if not ends_with_answer(ep):
        last = next((m for m in reversed(ep.messages) if m.get("role") == "assistant"), {})
        text = str(last.get("content") or "")
        if not (ep.method in cfg.clarify_methods and not last.get("tool_calls") and asks_user(text)):
            problems.append(f"no_final_answer: the episode ends without a final answer (status {ep.status})")
    return CheckResult(not problems, problems)


def observation_error(text: str | None) -> str | None:
    """The error a ToolBench-style observation reports ('' / absent: none)."""
    if text is None:
        return "no observation (the call was never answered)"
    try:
        obs = json.loads(text)
    except json.JSONDecodeError:
        return None  # free text (ReAct imports): nothing says it failed
    if isinstance(obs, dict) and obs.get("error"):
        return str(obs["error"])[:300]
    return None


def check_execution(ep: Episode) -> CheckResult:
    """Only well-formed calls count here: a malformed one is the format check's failure."""
    schemas = offered_schemas(ep)
    problems = []
    if ep.status == "error":
        problems.append(f"episode_error: {'; '.join(ep.errors)[:300] or 'the episode failed'}")
    for i, call in enumerate(episode_calls(ep), 1):
        args, _ = _arguments(call.arguments)
        if call.name == FINISH or call.name not in schemas or args is None or schema_problem(schemas[call.name], args):
            continue
        err = observation_error(call.observation)
        if err:
            problems.append(f"call_error: call {i} ({call.name}): {err}")
    return CheckResult(not problems, problems)


async def check_semantic(ep: Episode, judge: Judge, cfg: VerifyConfig) -> CheckResult:
    """ToolEval's answer-status judgment, `cfg.votes` times; score = share of Solved votes."""
    answer = from_episode(ep)
    if not answer.finished or answer.final_answer == "give_up_and_restart":
        return CheckResult(False, ["not_finished: no final answer to judge"], 0.0)
    rounds = await asyncio.gather(*(answer_status(judge, answer) for _ in range(cfg.votes)))
    votes = [{"answer_status": s.value, "reason": r[:500], "judge_calls": c, "judge_failures": f}
             for s, r, c, f in rounds]
    solved = sum(s is AnswerStatus.SOLVED for s, *_ in rounds)
    score = solved / len(rounds)
    if score >= cfg.min_solved_votes:
        return CheckResult(True, [], score, votes)
    if all(f for *_, f in rounds):
        why = f"judge_unusable: no usable verdict in {len(rounds)} votes"
    else:
        why = f"judged_unsolved: {solved}/{len(rounds)} votes Solved (need {cfg.min_solved_votes:.0%})"
    return CheckResult(False, [why], score, votes)


# --- the record (`VerifiedEpisode`, a record kind of toolweave.schemas) ------------------------

async def verify_episode(ep: Episode, cfg: VerifyConfig, judge: Judge | None = None) -> VerifiedEpisode:
    """Run the enabled checks. The semantic check needs `judge`; it is skipped for an episode that
    already failed format or execution (a judge call saved: it cannot pass any more)."""
    results: dict[str, CheckResult] = {}
    if cfg.format:
        results["format"] = check_format(ep, cfg)
    if cfg.execution:
        results["execution"] = check_execution(ep)
    if cfg.semantic:
        if judge is None:
            raise ValueError("verify.semantic needs a judge model")
        if all(r.passed for r in results.values()):
            results["semantic"] = await check_semantic(ep, judge, cfg)
    columns: dict[str, Any] = {}
    for name, r in results.items():
        columns[f"{name}_pass"], columns[f"{name}_reason"] = r.passed, r.reason
        if name != "semantic":
            columns[f"{name}_problems"] = r.problems
    if "semantic" in results:
        sem = results["semantic"]
        columns.update(semantic_score=sem.score, semantic_votes=sem.votes, judge_model=judge.name,
                       judge_prompt_version=judge.prompt_version)
    calls = [c for c in episode_calls(ep) if c.name != FINISH]
    failed = sum(observation_error(c.observation) is not None for c in calls)
    base = {k: getattr(ep, k) for k in Episode.model_fields}  # re-verifying a VerifiedEpisode starts afresh
    return VerifiedEpisode(**base, **columns, verified=bool(results) and all(
        r.passed for r in results.values()) and (not cfg.semantic or "semantic" in results),
        gave_answer=gave_answer_by_finish(ep), tool_calls=len(calls), failed_calls=failed)


async def verify_episodes(episodes: list[Episode], cfg: VerifyConfig, judge: Judge | None = None, *,
                          concurrency: int = 16) -> list[VerifiedEpisode]:
    sem = asyncio.Semaphore(concurrency)

    async def one(ep: Episode) -> VerifiedEpisode:
        async with sem:
            return await verify_episode(ep, cfg, judge)

    return list(await asyncio.gather(*(one(ep) for ep in episodes)))


def summarize(verified: list[VerifiedEpisode]) -> dict[str, Any]:
    """Counts for the stage summary and the dataset card: per check passed / failed / not run, and
    failures by reason code."""
    out: dict[str, Any] = {"episodes": len(verified), "verified": sum(v.verified for v in verified)}
    for name in CHECKS:
        flags = [getattr(v, f"{name}_pass") for v in verified]
        reasons: dict[str, int] = {}
        for v in verified:
            reason = getattr(v, f"{name}_reason")
            if reason:
                code = reason.split(":", 1)[0]
                reasons[code] = reasons.get(code, 0) + 1
        out[name] = {"passed": flags.count(True), "failed": flags.count(False), "not_run": flags.count(None),
                     "reasons": dict(sorted(reasons.items()))}
    return out


# --- what sft_data trains on -----------------------------------------------------------------

def sft_exclusion(ep: Episode, cfg: VerifyConfig) -> str | None:
    """Why sft_data must not train on `ep` under `cfg` (None: it may). `verify.require` lists the
    checks that must have passed ([] lets unverified episodes through); `verify.toolbench_rule`
    keeps only give_answer paths judged Solved, whatever `require` says."""
    if not cfg.require and not cfg.toolbench_rule:
        return None
    if not isinstance(ep, VerifiedEpisode):
        return "excluded: not verified (verify.require is set)"
    if cfg.toolbench_rule:
        if not ep.gave_answer:
            return "excluded: not a give_answer path (verify.toolbench_rule)"
        if ep.semantic_pass is not True:
            return f"excluded: not judged solved (verify.toolbench_rule): {ep.semantic_reason or 'not judged'}"
    for name in cfg.require:
        passed = getattr(ep, f"{name}_pass")
        if passed is None:
            return f"excluded: {name} check not run (verify.require)"
        if not passed:
            return f"excluded: {name} check failed: {getattr(ep, f'{name}_reason')}"
    return None


def unverified_chain(cfg: RunConfig) -> str | None:
    """Why this config cannot make SFT data as it stands (None: it can): sft_data takes only verified
    episodes unless `verify.require: []`, so the chain (`stages:`) must have a verify stage."""
    if not (cfg.verify.require or cfg.verify.toolbench_rule) or "verify" in cfg.stages:
        return None
    setting = f"verify.require is {cfg.verify.require}" if cfg.verify.require else "verify.toolbench_rule is true"
    return (f"{setting} but stages: {cfg.stages} has no verify stage, so no episode is verified; add verify "
            "before sft_data, or set verify.require: [] (and verify.toolbench_rule: false) to train on "
            "unverified episodes")


def select_for_sft(episodes: list[Episode], cfg: VerifyConfig) -> tuple[list[Episode], list[tuple[Episode, str]]]:
    """(kept, [(excluded episode, reason)]): nothing is dropped without its reason."""
    kept, excluded = [], []
    for ep in episodes:
        why = sft_exclusion(ep, cfg)
        if why is None:
            kept.append(ep)
        else:
            excluded.append((ep, why))
    return kept, excluded
