import json

import pyarrow as pa
import pytest

from toolweave.schemas import (RECORD_KINDS, CatalogueEntry, Episode, Function, Instruction, Record, RecordError,
                               Reject, SFTExample, Tool)


def test_every_kind_has_an_arrow_schema_matching_its_fields():
    for kind, cls in RECORD_KINDS.items():
        assert cls.KIND == kind
        assert set(cls.ARROW.names) == set(cls.model_fields), kind


def test_tool_row_round_trip_keeps_json_fields():
    fn = Function(name="f", parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
                  response_schema={"type": "array"}, response_examples=['[1]'])
    tool = Tool(id="t", name="T", functions=[fn], openapi={"openapi": "3.0.0"}, extra={"k": [1, {"a": None}]})
    row = tool.to_row()
    assert isinstance(row["extra"], str) and isinstance(row["functions"][0]["parameters"], str)
    table = pa.Table.from_pylist([row], schema=Tool.ARROW)
    back = Tool.from_row(table.to_pylist()[0])
    assert back == tool and back.function("f").required == ["q"]


def test_misfit_rows_name_the_record_and_the_reason():
    with pytest.raises(RecordError) as e:
        Episode.from_row({"id": "ep-7", "instruction_id": "i", "method": "dfsdt", "status": "exploded"})
    assert e.value.record_id == "ep-7" and e.value.kind == "episode"
    assert str(e.value).startswith("episode record 'ep-7': status: Input should be")
    with pytest.raises(RecordError, match=r"tool record 't': extra: .*JSON|Expecting"):
        Tool.from_row({"id": "t", "name": "T", "extra": "{not json"})
    with pytest.raises(RecordError, match="instruction record '\\?'"):
        Instruction.from_row({"text": "no id"})
    with pytest.raises(RecordError, match="unknown"):
        Reject.from_row({"id": "r", "stage": "s", "reason": "x", "unknown": 1})


def test_defaults_fill_missing_fields():
    entry = CatalogueEntry.from_row({"id": "a", "name": "A", "description": "d"})
    assert (entry.category, entry.https) == ("", None)
    ex = SFTExample(id="s", episode_ids=["e"], input_ids=[1, 2], labels=[-100, 2], position_ids=[0, 1], seq_lens=[2])
    assert SFTExample.from_row(ex.to_row()) == ex
    assert isinstance(Record, type) and json.loads(Tool(id="t", name="T").to_row()["extra"]) == {}


def test_arrow_schemas_are_derived_with_their_types():
    from toolweave.schemas import EvalResult, LedgerEntry, RecordOutcome
    string, strings, ints32 = pa.string(), pa.list_(pa.string()), pa.list_(pa.int32())
    expected = {
        "catalogue": {"id": string, "name": string, "description": string, "category": string, "auth": string,
                      "https": pa.bool_(), "cors": string, "link": string},
        "tool": {"id": string, "name": string, "category": string, "description": string, "auth": string,
                 "base_url": string, "source": string, "openapi": string, "nl_documentation": string,
                 "extra": string, "functions": pa.list_(pa.struct([
                     ("name", string), ("description", string), ("method", string), ("path", string),
                     ("parameters", string), ("response_schema", string), ("response_examples", strings)]))},
        "instruction": {"id": string, "source": string, "mode": string, "text": string, "tool_ids": strings,
                        "relevant_functions": pa.list_(pa.struct([("tool", string), ("function", string)])),
                        "split": string, "hidden_details": string, "extra": string},
        "episode": {"id": string, "instruction_id": string, "method": string, "query": string, "status": string,
                    "final_answer": string, "messages": string, "tools": string, "tree": string, "model": string,
                    "split": string, "llm_calls": pa.int64(), "prompt_tokens": pa.int64(),
                    "completion_tokens": pa.int64(), "errors": strings, "extra": string},
        "verified_episode": {"id": string, "instruction_id": string, "method": string, "query": string,
                             "status": string, "final_answer": string, "messages": string, "tools": string,
                             "tree": string, "model": string, "split": string, "llm_calls": pa.int64(),
                             "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(), "errors": strings,
                             "extra": string, "format_pass": pa.bool_(), "format_reason": string,
                             "format_problems": strings, "execution_pass": pa.bool_(), "execution_reason": string,
                             "execution_problems": strings, "semantic_pass": pa.bool_(), "semantic_reason": string,
                             "semantic_score": pa.float64(), "semantic_votes": string, "judge_model": string,
                             "judge_prompt_version": string, "verified": pa.bool_(), "gave_answer": pa.bool_(),
                             "tool_calls": pa.int64(), "failed_calls": pa.int64()},
        "sft": {"id": string, "episode_ids": strings, "input_ids": ints32, "labels": ints32,
                "position_ids": ints32, "seq_lens": ints32, "format": string},
        "eval": {"id": string, "query_id": string, "run": string, "method": string, "split": string,
                 "metric": string, "label": string, "score": pa.float64(), "votes": string, "judge_model": string,
                 "prompt_version": string, "details": string},
        "reject": {"id": string, "stage": string, "source": string, "reason": string, "record": string},
        "api_sample": {"id": string, "mode": string, "group": string, "tools": string},
        "ledger": {"id": string, "ok": pa.bool_(), "outputs": strings},
        "outcome": {"id": string, "ok": pa.bool_(), "reason": string, "message": string, "n_out": pa.int64(), "llm_calls": pa.int64(),
                    "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(), "model": string,
                    "outputs": strings},
    }
    assert set(RECORD_KINDS) == set(expected)
    for kind, cls in RECORD_KINDS.items():
        assert {f.name: f.type for f in cls.ARROW} == expected[kind], kind
        assert cls.ARROW.names == list(cls.model_fields), kind  # the models' field order
    # rows of every kind fit their schema: outcome and ledger rows as the runners write them
    rows = [(RecordOutcome, RecordOutcome(id="i", ok=False, reason="ValueError", outputs=["e"])),
            (LedgerEntry, LedgerEntry(id="i", ok=False, outputs=["e"])),
            (EvalResult, EvalResult(id="r", query_id="q", metric="pass_rate", label="Pass", score=1.0, votes=[1]))]
    for cls, rec in rows:
        table = pa.Table.from_pylist([rec.to_row()], schema=cls.ARROW)
        assert cls.from_row(table.to_pylist()[0]) == rec


def test_episode_split_is_a_split():
    with pytest.raises(RecordError, match="split"):
        Episode.from_row({"id": "e", "instruction_id": "i", "method": "dfsdt", "status": "answered", "split": "dev"})
