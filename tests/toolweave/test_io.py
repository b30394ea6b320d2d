from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from toolweave.io import TMP_PREFIX, existing_ids, part_files, read_records, write_part
from toolweave.schemas import Function, Reject, Tool
from toolweave.toolsets import import_paths

EVAL = Path(__file__).parents[1] / "data/toolalpaca/eval_simulated.json"


def test_tools_round_trip_through_parquet(tmp_path):
    tools = import_paths([EVAL]).tools
    path = write_part(tools, tmp_path / "toolsets", Tool, name="a")
    assert path.name == "part-a.parquet"
    assert read_records(tmp_path / "toolsets", Tool) == (tools, [])
    assert existing_ids(tmp_path / "toolsets") == {t.id for t in tools}


def test_nothing_to_write_writes_nothing(tmp_path):
    assert write_part([], tmp_path / "d", Tool) is None
    assert not (tmp_path / "d").exists() and read_records(tmp_path / "d", Tool) == ([], [])


def test_hand_written_parquet_with_fewer_columns_reads(tmp_path):
    table = pa.table({"id": ["t1"], "name": ["Tiny"],
                      "functions": [[{"name": "ping", "parameters": '{"type": "object", "properties": {}}'}]]})
    pq.write_table(table, tmp_path / "part-0.parquet")
    (tool,), errors = read_records(tmp_path, Tool)
    assert errors == []
    assert tool.name == "Tiny" and tool.function("ping") == Function(name="ping") and tool.extra == {}


def test_misfit_row_is_an_error_naming_the_record(tmp_path):
    good = Reject(id="r1", stage="s", reason="ok")
    write_part([good], tmp_path, Reject)
    pq.write_table(pa.table({"id": ["r2"], "stage": ["s"]}), tmp_path / "part-bad.parquet")  # no reason
    records, errors = read_records(tmp_path, Reject)
    assert records == [good]
    assert [(e.kind, e.record_id) for e in errors] == [("reject", "r2")] and "reason" in errors[0].reason
    assert str(errors[0]).startswith("reject record 'r2': reason: Field required")


def test_half_written_parts_are_invisible(tmp_path):
    write_part([Reject(id="r", stage="s", reason="x")], tmp_path, Reject)
    (tmp_path / f"{TMP_PREFIX}junk.parquet").write_bytes(b"half")
    assert len(part_files(tmp_path)) == 1 and existing_ids(tmp_path) == {"r"}

