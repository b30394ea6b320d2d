"""Instructions: ToolAlpaca (a user agent writes requests from one tool's documentation, with the
details it keeps back) and ToolBench (sample APIs I1/I2/I3, prompt with seed examples, filter),
plus dedupe, Inst/Tool/Cat splits and the import of ToolBench query files.

Every instruction carries `relevant_functions`, so the same records train the API retriever.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolweave import safe_read
from toolweave.authoring.build_toolset import extract_json
from toolweave.config import InstructionsConfig
from toolweave.llm.types import CallTag, ChatModel, LLMError
from toolweave.authoring.near_dup import near_duplicates
from toolweave.prompts import render
from toolweave.schemas import FunctionRef, Instruction, Reject, Tool
from toolweave.toolsets.naming import function_name, standardize, tool_id
from toolweave.toolsets.toolbench import api_list_entries

log = logging.getLogger(__name__)

MULTI_TOOL_MODES = ("I2", "I3")

TOOLALPACA_SCHEMA = {
    "type": "object",
    "properties": {"instructions": {"type": "array", "items": {
        "type": "object",
        "properties": {"instruction": {"type": "string"}, "hidden_details": {"type": "string"},
                       "functions": {"type": "array", "items": {"type": "string"}}},
        "required": ["instruction", "hidden_details"]}}},
    "required": ["instructions"],
}
TOOLBENCH_SCHEMA = {
    "type": "object",
    "properties": {"queries": {"type": "array", "items": {
        "type": "object",
        "properties": {"query": {"type": "string"},
                       "related apis": {"type": "array", "items": {
                           "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}}},
        "required": ["query", "related apis"]}}},
    "required": ["queries"],
}


# --- ids, rejects, text ------------------------------------------------------------------------

def _digest(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


def instruction_id(mode: str, text: str) -> str:
    """Deterministic: the same request in the same mode is the same instruction on every run."""
    return f"inst-{_digest(mode, text.strip())}"


def normalize_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _reject(source: str, reason: str, record: Any, stage: str) -> Reject:
    text = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False, default=str)
    return Reject(id=f"{stage}:{_digest(source, reason, text)}", stage=stage, source=source,
                  reason=reason, record=text[:2000])


def _items(reply_text: str, key: str) -> list[Any]:
    """The list under `key` (or the bare list, or a single object) from a JSON-ish reply."""
    data = extract_json(reply_text)
    if isinstance(data, dict):
        data = data.get(key, [data] if any(k in data for k in ("query", "instruction")) else None)
    if not isinstance(data, list):
        raise ValueError(f"the reply has no {key!r} list")
    return data


async def _ask_items(llm: ChatModel, prompt: str, schema: dict, key: str, *, who: str, source: str,
                     episode: str, stage: str) -> list[Any] | Reject:
    """One generation call and its list of items, or the Reject that says why there is none."""
    try:
        reply = await llm.chat([{"role": "user", "content": prompt}], json_schema=schema,
                               tag=CallTag(stage=stage, episode=episode, role="user"))
    except LLMError as e:
        return _reject(source, f"{who}: instruction call failed: {e}", episode, stage)
    try:
        return _items(reply.content, key)
    except ValueError as e:
        return _reject(source, f"{who}: unusable instruction reply: {e}", reply.content, stage)


# --- ToolAlpaca --------------------------------------------------------------------------------

async def toolalpaca_instructions(tool: Tool, llm: ChatModel, cfg: InstructionsConfig, *,
                                  rng: random.Random, stage: str) -> list[Instruction | Reject]:
    """`cfg.per_tool` single-tool requests, each with the details the simulated user holds back
    (`stage`: the worker's, naming its calls and rejects)."""
    source = f"toolalpaca:{tool.id}"
    if not tool.functions:
        return [_reject(source, f"tool {tool.id!r}: has no functions to write instructions for", tool.id, stage)]
    # a random focus per call spreads the requests over the tool's functions
    focus = rng.sample([f.name for f in tool.functions], k=min(3, len(tool.functions)))
    prompt = render("instructions_toolalpaca", api_name=tool.name, description=tool.description,
                    documentation=tool.nl_documentation or _function_list(tool), n=cfg.per_tool,
                    focus=", ".join(focus))
    items = await _ask_items(llm, prompt, TOOLALPACA_SCHEMA, "instructions", who=f"tool {tool.id!r}",
                             source=source, episode=tool.id, stage=stage)
    if isinstance(items, Reject):
        return [items]
    out: list[Instruction | Reject] = []
    kept = 0
    for item in items:
        if not isinstance(item, dict) or not str(item.get("instruction") or "").strip():
            out.append(_reject(source, f"tool {tool.id!r}: an item without an instruction", item, stage))
            continue
        if kept >= cfg.per_tool:
            break
        text = str(item["instruction"]).strip()
        named = [str(n) for n in item.get("functions") or [] if isinstance(n, str | int)]
        refs = [FunctionRef(tool=tool.id, function=n) for n in dict.fromkeys(named) if tool.function(n)]
        out.append(Instruction(id=instruction_id("single", text), source=source, mode="single", text=text,
                               tool_ids=[tool.id], relevant_functions=refs,
                               hidden_details=str(item.get("hidden_details") or "").strip()))
        kept += 1
    return out


def _function_list(tool: Tool) -> str:
    return "\n".join(f"{f.name}: {f.description}\nParameters: {json.dumps(f.parameters)}" for f in tool.functions)


# --- ToolBench: sampling -----------------------------------------------------------------------

@dataclass
class ApiSample:
    """A group of sampled APIs for one instruction prompt. `tools` hold only the sampled functions;
    `group` is the tool id (I1), the category (I2) or the collection name (I3)."""

    mode: str
    group: str
    tools: list[Tool] = field(default_factory=list)

    @property
    def functions(self) -> list[FunctionRef]:
        return [FunctionRef(tool=t.id, function=f.name) for t in self.tools for f in t.functions]

    @property
    def id(self) -> str:
        return f"sample-{_digest(self.mode, self.group, *(f'{r.tool}/{r.function}' for r in self.functions))}"

    def api_docs(self, full: bool = False) -> list[dict[str, Any]]:
        """The APIs as the prompt shows them: ToolBench's api_list entries with their whole
        documentation (`full`, as the paper's prompt has it), or short (descriptions cut at 300
        characters, parameter names only)."""
        if full:
            return [e for t in self.tools for e in api_list_entries(t, "query")]
        docs = []
        for t in self.tools:
            for f in t.functions:
                props = f.parameters.get("properties") or {}
                docs.append({"tool_name": t.name, "api_name": f.name,
                             "api_description": (f.description or t.description)[:300],
                             "required_parameters": f.required,
                             "optional_parameters": [p for p in props if p not in f.required]})
        return docs


def _with_functions(tool: Tool, k: int, rng: random.Random) -> Tool:
    return tool.model_copy(update={"functions": rng.sample(tool.functions, k=min(k, len(tool.functions)))})


def _multi_tool_sample(mode: str, group: str, members: list[Tool], cfg: InstructionsConfig,
                       rng: random.Random) -> ApiSample:
    hi = min(max(2, cfg.max_tools), len(members))
    chosen = rng.sample(members, k=rng.randint(min(max(2, cfg.min_tools), hi), hi))
    per_tool = max(1, cfg.max_apis_per_tool)
    return ApiSample(mode, group, [_with_functions(t, rng.randint(1, per_tool), rng) for t in chosen])


def sample_api_groups(tools: list[Tool], cfg: InstructionsConfig, *, rng: random.Random) -> list[ApiSample]:
    """`cfg.samples_per_mode` samples for each mode in `cfg.modes`. I1: one tool, 2..max APIs of it;
    I2: 2..5 tools of one category; I3: 2..5 tools of one collection (`cfg.collections`); at most
    `cfg.max_apis_per_tool` APIs a tool. A mode with no eligible group yields no samples."""
    usable = sorted((t for t in tools if t.functions), key=lambda t: t.id)
    by_id = {t.id: t for t in usable}
    by_category: dict[str, list[Tool]] = defaultdict(list)
    for t in usable:
        if t.category:
            by_category[t.category].append(t)
    groups = {
        "I2": {c: ts for c, ts in sorted(by_category.items()) if len(ts) >= 2},
        "I3": {name: [by_id[i] for i in ids if i in by_id] for name, ids in sorted(cfg.collections.items())},
    }
    groups["I3"] = {k: v for k, v in groups["I3"].items() if len(v) >= 2}
    if "I3" in cfg.modes and not groups["I3"]:
        log.warning("instructions: no I3 samples: I3 needs instructions.collections (name -> tool ids) with "
                    "at least 2 known tools in a collection, and %s",
                    "none is configured" if not cfg.collections else "no collection has 2 known tools")
    samples: list[ApiSample] = []
    for mode in cfg.modes:
        if mode == "I1" and cfg.i1_apis == "all":  # ToolBench: every tool, with all its APIs
            samples += [ApiSample("I1", t.id, [t]) for t in usable]
            continue
        for _ in range(cfg.samples_per_mode):
            if mode == "I1":
                if not usable:
                    break
                tool = rng.choice(usable)
                hi = max(1, min(cfg.max_apis_per_tool, len(tool.functions)))
                k = rng.randint(min(2, hi), hi)
                samples.append(ApiSample("I1", tool.id, [_with_functions(tool, k, rng)]))
            else:
                if not groups[mode]:
                    break
                name = rng.choice(list(groups[mode]))
                samples.append(_multi_tool_sample(mode, name, groups[mode][name], cfg, rng))
    return samples


# --- ToolBench: generation and filters ---------------------------------------------------------

def load_seeds(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The in-context examples: `[{mode, api_list: [{tool_name, api_name, api_description}], query,
    "related apis": [[tool, api]]}]`; the packaged set when `path` is None."""
    if path is None:
        text = resources.files("toolweave").joinpath("data", "seed_instructions.json").read_text(encoding="utf-8")
    else:
        text = safe_read.read_text(path)  # a regular file, bounded in size and time
    seeds = json.loads(text)
    if not isinstance(seeds, list) or not all(isinstance(s, dict) and "query" in s for s in seeds):
        raise ValueError(f"seed file {path or 'seed_instructions.json'}: expected a list of objects with 'query'")
    return seeds


def _format_seed(seed: dict[str, Any]) -> str:
    apis = json.dumps(seed.get("api_list", []), ensure_ascii=False)
    answer = json.dumps({"query": seed["query"], "related apis": seed.get("related apis", [])}, ensure_ascii=False)
    return f"APIs: {apis}\nAnswer: {answer}"


def _api_index(sample: ApiSample) -> dict[tuple[str, str], FunctionRef]:
    """Every way a reply may name a sampled API -> its FunctionRef."""
    index: dict[tuple[str, str], FunctionRef] = {}
    for t in sample.tools:
        for f in t.functions:
            ref = FunctionRef(tool=t.id, function=f.name)
            exported = function_name(f.name, t.name)  # how ToolBench names it to models
            for tkey in {standardize(t.name), t.id}:
                for fkey in {standardize(f.name), standardize(exported), standardize(exported.rsplit("_for_", 1)[0])}:
                    index[(tkey, fkey)] = ref
    return index


def _related(raw: Any, index: dict[tuple[str, str], FunctionRef]) -> tuple[list[FunctionRef], list[str]]:
    """(known refs, unknown names) from a reply's `related apis`."""
    refs: list[FunctionRef] = []
    unknown: list[str] = []
    for pair in raw if isinstance(raw, list) else []:
        if isinstance(pair, dict):
            pair = [pair.get("tool_name", pair.get("tool", "")), pair.get("api_name", pair.get("api", ""))]
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            unknown.append(str(pair))
            continue
        key = (standardize(str(pair[0])), standardize(str(pair[1])))
        ref = index.get(key)
        if ref is None:
            unknown.append(f"{pair[0]}/{pair[1]}")
        elif ref not in refs:
            refs.append(ref)
    return refs, unknown


async def toolbench_instructions(sample: ApiSample, llm: ChatModel, seeds: list[dict], cfg: InstructionsConfig,
                                 *, rng: random.Random, stage: str) -> list[Instruction | Reject]:
    """Instructions for one API sample, with their relevant APIs; those naming APIs outside the
    sample, or fewer than 2 of them in multi-tool modes, are rejected (by `stage`, the worker's)."""
    source = f"toolbench:{sample.mode}:{sample.id}"
    pool = seeds
    if cfg.seed_modes == "own":  # ToolBench: the in-context examples come from the query's own mode
        pool = [s for s in seeds if s.get("mode") == sample.mode] or seeds
    picked = rng.sample(pool, k=min(cfg.num_seed_examples, len(pool)))
    prompt = render("instructions_toolbench", n=cfg.per_sample,
                    examples="\n\n".join(_format_seed(s) for s in picked),
                    apis=json.dumps(sample.api_docs(full=cfg.api_docs == "full"), ensure_ascii=False),
                    multi_tool="Each query must use APIs of at least two different tools." if sample.mode in MULTI_TOOL_MODES
                    else "Each query may use one or several of the APIs.")
    items = await _ask_items(llm, prompt, TOOLBENCH_SCHEMA, "queries", who=f"sample {sample.id}",
                             source=source, episode=sample.id, stage=stage)
    if isinstance(items, Reject):
        return [items]
    index = _api_index(sample)
    min_related = 2 if sample.mode in MULTI_TOOL_MODES else cfg.i1_min_related
    sampled = [r.model_dump() for r in sample.functions]
    out: list[Instruction | Reject] = []
    for item in items:
        text = str(item.get("query") or "").strip() if isinstance(item, dict) else ""
        if not text:
            out.append(_reject(source, f"sample {sample.id}: an item without a query", item, stage))
            continue
        refs, unknown = _related(item.get("related apis", item.get("related_apis")), index)
        if unknown:
            out.append(_reject(source, f"sample {sample.id}: related APIs not in the sampled set: "
                                       f"{', '.join(unknown)}", item, stage))
            continue
        if len(refs) < min_related:
            out.append(_reject(source, f"sample {sample.id}: {sample.mode} query names {len(refs)} related "
                                       f"API(s), needs at least {min_related}", item, stage))
            continue
        out.append(Instruction(id=instruction_id(sample.mode, text), source=source, mode=sample.mode, text=text,
                               tool_ids=[t.id for t in sample.tools], relevant_functions=refs,
                               extra={"api_list": sampled, "group": sample.group}))
    return out


# --- dedupe and splits -------------------------------------------------------------------------

def dedupe_instructions(instrs: list[Instruction], near_threshold: float | None = None, *, stage: str
                        ) -> tuple[list[Instruction], list[Reject]]:
    """Keep the first of each normalised text (case, punctuation and spacing ignored); with
    `near_threshold`, then drop near duplicates too (MinHash LSH, `toolweave.authoring.near_dup`).
    The rejects are `stage`'s."""
    seen: dict[str, str] = {}
    kept: list[Instruction] = []
    rejects: list[Reject] = []
    for ins in instrs:
        key = normalize_text(ins.text)
        if key in seen:
            rejects.append(Reject(id=f"{stage}:dup:{ins.id}", stage=stage, source=ins.source,
                                  reason=f"instruction {ins.id!r} duplicates {seen[key]!r}",
                                  record=ins.model_dump_json()[:2000]))
            continue
        seen[key] = ins.id
        kept.append(ins)
    if near_threshold:
        kept, near = near_duplicates(kept, near_threshold, normalize=normalize_text, stage=stage)
        rejects += near
    return kept, rejects


def _held_out(items: list[str], fraction: float, rng: random.Random) -> set[str]:
    """round(fraction * n) of `items` (at least one when fraction > 0; never all)."""
    if fraction <= 0 or len(items) < 2:
        return set()
    n = min(len(items) - 1, max(1, round(fraction * len(items))))
    return set(rng.sample(sorted(items), k=n))


def assign_splits(instrs: list[Instruction], tools: list[Tool], cfg: InstructionsConfig,
                  seed: int) -> list[Instruction]:
    """ToolBench's generalisation splits, deterministic by seed: test_cat = instructions touching a
    tool of a held-out category; test_tool = touching a held-out tool; test_inst = a random share of
    the rest; train = the remainder."""
    rng = random.Random(seed)
    categories = sorted({t.category for t in tools if t.category})
    held_cats = _held_out(categories, cfg.holdout.get("test_cat", 0.0), rng)
    cat_tools = {t.id for t in tools if t.category in held_cats}
    held_tools = _held_out([t.id for t in tools if t.id not in cat_tools], cfg.holdout.get("test_tool", 0.0), rng)

    split: dict[str, str] = {}
    pool: list[str] = []
    for ins in sorted(instrs, key=lambda i: i.id):
        touched = set(ins.tool_ids) | {r.tool for r in ins.relevant_functions}
        if touched & cat_tools:
            split[ins.id] = "test_cat"
        elif touched & held_tools:
            split[ins.id] = "test_tool"
        else:
            pool.append(ins.id)
    n_inst = round(cfg.holdout.get("test_inst", 0.0) * len(pool))
    for iid in rng.sample(pool, k=n_inst):
        split[iid] = "test_inst"
    return [ins.model_copy(update={"split": split.get(ins.id, "train")}) for ins in instrs]


# --- ToolBench / StableToolBench query files ---------------------------------------------------

def _mode_from_name(path: Path, n_tools: int) -> str:
    m = re.search(r"G([123])", path.name)
    return f"I{m.group(1)}" if m else ("I1" if n_tools <= 1 else "I2")


def import_toolbench_queries(path: str | Path, *, stage: str) -> tuple[list[Tool], list[Instruction], list[Reject]]:
    """A ToolBench query file (`G*_query.json`, StableToolBench `G*_instruction.json`) as tools and
    instructions; `relevant APIs [[tool, api]]` become FunctionRefs; G1/G2/G3 give I1/I2/I3. The
    rejects are `stage`'s (the one importing it)."""
    from toolweave.toolsets.toolbench import build_tools, read_query_file  # the shared ToolBench importer

    path = Path(path)
    source = f"toolbench:{path.name}"
    try:
        queries = json.loads(safe_read.read_text(path))  # a regular file, bounded in size and time
    except (OSError, json.JSONDecodeError) as e:
        return [], [], [_reject(source, f"query file {path}: cannot be read: {e}", str(path), stage)]
    if not isinstance(queries, list):
        return [], [], [_reject(source, f"query file {path}: expected a list of queries", str(path), stage)]
    # one import for the whole file, so a tool has one id and the union of its APIs
    records, rejects = read_query_file(queries, str(path))
    tools, build_rejects = build_tools(records)
    rejects += build_rejects
    by_key = {(t.category, tool_id(t.name)): t for t in tools}
    instructions: list[Instruction] = []
    for n, q in enumerate(queries):
        qid = str(q.get("query_id", n)) if isinstance(q, dict) else str(n)
        text = str(q.get("query") or "").strip() if isinstance(q, dict) else ""
        if not text or not isinstance(q.get("api_list"), list):
            rejects.append(_reject(source, f"query {qid}: needs 'query' and 'api_list'", q, stage))
            continue
        offered: dict[tuple[str, str], FunctionRef] = {}  # (tool name, api name) -> ref
        for api in q["api_list"]:
            t = by_key.get((str(api.get("category_name")), tool_id(str(api.get("tool_name"))))) \
                if isinstance(api, dict) else None
            if t is not None and t.function(str(api.get("api_name"))) is not None:
                offered[(standardize(api["tool_name"]), api["api_name"])] = FunctionRef(tool=t.id, function=api["api_name"])
        refs: list[FunctionRef] = []
        missing: list[str] = []
        for pair in q.get("relevant APIs") or []:
            ref = offered.get((standardize(str(pair[0])), str(pair[1]))) \
                if isinstance(pair, list) and len(pair) == 2 else None
            if ref is None:
                missing.append("/".join(map(str, pair)) if isinstance(pair, list) else str(pair))
            elif ref not in refs:
                refs.append(ref)
        if missing or not refs:
            rejects.append(_reject(source, f"query {qid}: relevant APIs not in its api_list: "
                                           f"{', '.join(missing) or 'none given'}", q, stage))
            continue
        tool_ids = list(dict.fromkeys(r.tool for r in offered.values()))
        mode = _mode_from_name(path, len(tool_ids))
        instructions.append(Instruction(
            id=instruction_id(mode, text), source=source, mode=mode, text=text, tool_ids=tool_ids,
            relevant_functions=refs,
            extra={"query_id": q.get("query_id"), "api_list": [r.model_dump() for r in offered.values()]}))
    return tools, instructions, rejects
