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
