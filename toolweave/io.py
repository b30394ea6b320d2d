"""Parquet datasets of records: write parts atomically, read back with schema checks.

A dataset is a directory of `part-*.parquet` files. Parts are written to a temporary name and
renamed, so a killed writer leaves no half file that a reader would take for data.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from toolweave.schemas import Record, RecordError
from toolweave.secrets import redact_obj

TMP_PREFIX = ".tmp-"


def to_table(records: Iterable[Record], cls: type[Record]) -> pa.Table:
    rows = [redact_obj(r.to_row()) for r in records]  # every Parquet row passes here: no key is written
    return pa.Table.from_pylist(rows, schema=cls.ARROW)


def write_part(records: Iterable[Record], out_dir: str | Path, cls: type[Record],
               name: str | None = None) -> Path | None:
    """Write one part file; returns its path (None when there was nothing to write)."""
    table = to_table(records, cls)
    if table.num_rows == 0:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"part-{name or uuid.uuid4().hex}.parquet"
    tmp = out / f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def replace_part(records: Iterable[Record], out_dir: str | Path, cls: type[Record], name: str) -> Path | None:
    """The part `name` holds exactly `records`: written, or removed when there are none (a rerun
    or a retry that makes fewer kinds of record than the run before)."""
    path = write_part(records, out_dir, cls, name=name)
    if path is None:
        (Path(out_dir) / f"part-{name}.parquet").unlink(missing_ok=True)
    return path


def part_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        return []
    return sorted(f for f in p.rglob("*.parquet") if not f.name.startswith(TMP_PREFIX))


def iter_rows(path: str | Path, columns: list[str] | None = None) -> Iterator[dict]:
    for f in part_files(path):
        pf = pq.ParquetFile(f)
        cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
        for batch in pf.iter_batches(columns=cols):
            yield from batch.to_pylist()


def read_records(path: str | Path, cls: type[Record]) -> tuple[list[Record], list[RecordError]]:
    """All records of a dataset; rows that do not fit the schema come back as errors."""
    good: list[Record] = []
    bad: list[RecordError] = []
    for row in iter_rows(path):
        try:
            good.append(cls.from_row(row))
        except RecordError as e:
            bad.append(e)
    return good, bad


def existing_ids(path: str | Path) -> set[str]:
    return {r["id"] for r in iter_rows(path, columns=["id"])}
