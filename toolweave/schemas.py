"""Record kinds: one pydantic model each; its Arrow schema is derived from the model's fields.

Parquet is the storage between stages. Free-form JSON (JSON Schemas, chat messages, DFSDT trees)
is stored as JSON text so that any stage, another tool or a person can write a valid dataset
without nested-struct gymnastics; the pydantic models hold it parsed.
"""
from __future__ import annotations

import json
import types
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator
from pydantic.fields import FieldInfo


class RecordError(ValueError):
    """A record that does not fit its schema; names the record and the reason."""

    def __init__(self, kind: str, record_id: str, reason: str):
        self.kind, self.record_id, self.reason = kind, record_id, reason
        super().__init__(f"{kind} record {record_id!r}: {reason}")


_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def arrow_type(annotation: Any, info: FieldInfo | None = None) -> pa.DataType:
    """The Arrow type of a field: a `pa.DataType` in its `Annotated` metadata wins; dicts and `Any`
    are JSON text; a nested model is a struct of its fields; `X | None` is a nullable X."""
    explicit = next((m for m in (info.metadata if info else ()) if isinstance(m, pa.DataType)), None)
    if explicit is not None:
        return explicit
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return arrow_type(args[0], FieldInfo.from_annotation(annotation))
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return arrow_type(inner)
    if origin is Literal:
        (kind,) = {type(a) for a in args}
        return _SCALARS[kind]
    if origin is list:
        return pa.list_(arrow_type(args[0]))
    if origin is dict or annotation is Any:
        return pa.string()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct(_arrow_fields(annotation))
    return _SCALARS[annotation]


def _arrow_fields(model: type[BaseModel], as_json: tuple[str, ...] = ()) -> list[pa.Field]:
    return [pa.field(name, pa.string() if name in as_json else arrow_type(f.annotation, f))
            for name, f in model.model_fields.items()]


def _json_load(v: Any) -> Any:
    if isinstance(v, str | bytes):
        return json.loads(v) if v else None
    return v


class Record(BaseModel):
    """Base of every record kind. `JSON_FIELDS` are stored as JSON text in Arrow."""

    model_config = ConfigDict(extra="forbid")
    KIND: ClassVar[str] = "record"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()
    ARROW: ClassVar[pa.Schema]  # derived from the fields when the class is made

    id: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.ARROW = pa.schema(_arrow_fields(cls, cls.JSON_FIELDS))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Record":
        row = dict(row)
        try:
            for f in cls.JSON_FIELDS:
                if f in row:
                    row[f] = _json_load(row[f])
            return cls.model_validate(row)
        except (ValidationError, json.JSONDecodeError, TypeError) as e:
            raise RecordError(cls.KIND, str(row.get("id", "?")), _short_reason(e)) from None

    def to_row(self) -> dict[str, Any]:
        row = self.model_dump(mode="json")
        for f in self.JSON_FIELDS:
            if row.get(f) is not None:
                row[f] = json.dumps(row[f], ensure_ascii=False, sort_keys=False)
        return row


def _short_reason(e: Exception) -> str:
    if isinstance(e, ValidationError):
        parts = []
        for err in e.errors()[:3]:
            loc = ".".join(str(x) for x in err["loc"]) or "<record>"
            parts.append(f"{loc}: {err['msg']}")
        return "; ".join(parts)
    return str(e)


# --- catalogue -------------------------------------------------------------------------------

class CatalogueEntry(Record):
    """One line of a public-apis style catalogue (ToolAlpaca's `public_apis.json`)."""

    KIND: ClassVar[str] = "catalogue"
    name: str
    description: str
    category: str = ""
    auth: str = ""
    https: bool | None = None
    cors: str = ""
    link: str = ""



# --- tools -----------------------------------------------------------------------------------

class Function(BaseModel):
    """One callable API of a tool. `parameters` is a JSON Schema object."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    method: str | None = None
    path: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    response_schema: dict[str, Any] | None = None
    response_examples: list[str] = Field(default_factory=list)

    @field_validator("parameters", "response_schema", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        return _json_load(v)

    @field_serializer("parameters", "response_schema")
    def _dump(self, v: Any) -> str | None:
        return None if v is None else json.dumps(v, ensure_ascii=False)

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))



class Tool(Record):
    """A tool (one API product) and its functions: the row of a toolset dataset.

    `source` says which importer or builder made it; `openapi` keeps the validated OpenAPI
    document where there is one; `extra` keeps source-specific fields (ToolAlpaca's
    Function_Projection, NLDocumentation, Golden_Answers, ...).
    """

    KIND: ClassVar[str] = "tool"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("openapi", "extra")
    name: str
    category: str = ""
    description: str = ""
    auth: str = ""
    base_url: str = ""
    source: str = ""
    functions: list[Function] = Field(default_factory=list)
    openapi: dict[str, Any] | None = None
    nl_documentation: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)

    def function(self, name: str) -> Function | None:
        return next((f for f in self.functions if f.name == name), None)



# --- instructions ----------------------------------------------------------------------------

class FunctionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str  # tool id
    function: str


Mode = Literal["single", "I1", "I2", "I3"]
Split = Literal["train", "test_inst", "test_tool", "test_cat"]


class Instruction(Record):
    KIND: ClassVar[str] = "instruction"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("extra",)
    source: str = ""
    mode: Mode = "single"
    text: str
    tool_ids: list[str] = Field(default_factory=list)
    relevant_functions: list[FunctionRef] = Field(default_factory=list)
    split: Split = "train"
    hidden_details: str = ""  # what the simulated user knows but did not say (ToolAlpaca)
    extra: dict[str, Any] = Field(default_factory=dict)



# --- episodes --------------------------------------------------------------------------------

EpisodeStatus = Literal["answered", "gave_up", "max_steps", "budget", "no_answer", "error"]


class Episode(Record):
    """One solved (or failed) instruction.

    `messages` are OpenAI chat messages (assistant `tool_calls`, `tool` results); `tools` the
    OpenAI tool list the assistant saw; `tree` the whole DFSDT tree (list of node dicts:
    id, parent, depth, message, observation, status, pruned, valid) for DFSDT runs.
    """

    KIND: ClassVar[str] = "episode"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("messages", "tools", "tree", "extra")
    instruction_id: str
    method: str  # simulate_react | simulate_fc | cot | dfsdt | imported
    query: str = ""
    status: EpisodeStatus
    final_answer: str = ""
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tree: list[dict[str, Any]] | None = None
    model: str = ""
    split: Split = "train"
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)



class VerifiedEpisode(Episode):
    """An episode with its verification (`toolweave.curation.verify`): `<check>_pass` (None: not run),
    `_reason` (`code: detail`), `_problems`, for the checks format, execution and semantic."""

    KIND: ClassVar[str] = "verified_episode"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = (*Episode.JSON_FIELDS, "semantic_votes")
    format_pass: bool | None = None
    format_reason: str = ""
    format_problems: list[str] = Field(default_factory=list)
    execution_pass: bool | None = None
    execution_reason: str = ""
    execution_problems: list[str] = Field(default_factory=list)
    semantic_pass: bool | None = None
    semantic_reason: str = ""
    semantic_score: float | None = None
    semantic_votes: list[dict[str, Any]] = Field(default_factory=list)
    judge_model: str = ""
    judge_prompt_version: str = ""
    verified: bool = False  # every check that ran passed (and at least one ran)
    gave_answer: bool = False  # ended on Finish(give_answer): ToolBench's rule looks at this
    tool_calls: int = 0
    failed_calls: int = 0


# --- training --------------------------------------------------------------------------------

class SFTExample(Record):
    """A (possibly packed) training sequence. `seq_lens` lists the packed examples' lengths;
    `position_ids` restart at 0 for each; `labels` are -100 where no loss is taken."""

    KIND: ClassVar[str] = "sft"
    episode_ids: list[str]
    input_ids: Annotated[list[int], pa.list_(pa.int32())]
    labels: Annotated[list[int], pa.list_(pa.int32())]
    position_ids: Annotated[list[int], pa.list_(pa.int32())]
    seq_lens: Annotated[list[int], pa.list_(pa.int32())]
    format: str = ""



# --- evaluation ------------------------------------------------------------------------------

class EvalResult(Record):
    """One judged query. `metric`: pass_rate | solvable_pass_rate | win_rate | toolalpaca."""

    KIND: ClassVar[str] = "eval"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("votes", "details")
    query_id: str
    run: str = ""
    method: str = ""
    split: str = ""
    metric: str
    label: str  # Pass/Fail/Unsure, Win/Lose/Tie, Yes/No/Uncertain
    score: float
    votes: list[Any] = Field(default_factory=list)
    judge_model: str = ""
    prompt_version: str = ""
    details: dict[str, Any] = Field(default_factory=dict)



# --- rejects ---------------------------------------------------------------------------------

class Reject(Record):
    """An input a stage could not use: which record, which stage, why. Never dropped silently."""

    KIND: ClassVar[str] = "reject"
    stage: str
    source: str = ""
    reason: str
    record: str = ""  # the offending input, as text (truncated)



# --- the stage machinery's own rows --------------------------------------------------------------

class ApiSampleRow(Record):
    """One ToolBench API sample as a dataset row (the input of toolbench-style generation)."""

    KIND: ClassVar[str] = "api_sample"
    mode: str
    group: str
    tools: str  # JSON list of Tool rows (only the sampled functions)


class LedgerEntry(Record):
    """One committed input of a per-record stage (`_ledger/<stage>/`, see toolweave/stages/ledger.py):
    `ok` false when it failed (an error episode or a Reject), `outputs` the ids of what it wrote."""

    KIND: ClassVar[str] = "ledger"
    ok: bool = True
    outputs: list[str] = Field(default_factory=list)


class RecordOutcome(Record):
    """The driver's view of one processed input (what flows back for progress, not the data)."""

    KIND: ClassVar[str] = "outcome"
    ok: bool
    reason: str = ""  # the kind of failure (for "failures by reason")
    message: str = ""  # the failure itself, shortened (shown on the terminal)
    n_out: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    outputs: list[str] = Field(default_factory=list)


RECORD_KINDS: dict[str, type[Record]] = {
    c.KIND: c for c in (CatalogueEntry, Tool, Instruction, Episode, VerifiedEpisode, SFTExample, EvalResult, Reject,
                        ApiSampleRow, LedgerEntry, RecordOutcome)
}
