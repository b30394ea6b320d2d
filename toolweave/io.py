"""Parquet datasets of records: write parts atomically, read back with schema checks.

A dataset is a directory of `part-*.parquet` files, on a local (or NFS) path or in an object
store (`s3://bucket/prefix`, through pyarrow's filesystems; credentials and endpoint from the
usual AWS environment: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...). A part never shows half-written:

- locally it is written to a temporary name and renamed;
- in an object store, where there is no rename, the part is one PUT (or one multipart upload),
  which readers see whole or not at all. A commit of several objects is therefore write-then-
  marker: the data parts first, then a small marker object (the stage ledger's entry, written
  with `write_part` or `write_text`); readers trust parts only once the marker is there.

Every function takes a local path or a URI. A URI that went through `pathlib.Path` (as
`RunConfig.path` joins it: `s3:/bucket/x`) is read back as the URI it was.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from toolweave.schemas import Record, RecordError
from toolweave.secrets import BUCKET_SECRET_ENVS, read_secret, redact_obj

TMP_PREFIX = ".tmp-"

_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/+(.*)$")
_LOCAL = pafs.LocalFileSystem()


def location(path: str | Path) -> str:
    """The path as a string; a URI that pathlib collapsed (`s3:/b/k`) gets its `//` back."""
    s = str(path)
    m = _URI.match(s)
    if m and m.group(1).lower() != "file":
        return f"{m.group(1)}://{m.group(2)}"
    return s


def is_remote(path: str | Path) -> bool:
    s = location(path)
    return bool(_URI.match(s)) and not s.startswith("file:")


@functools.lru_cache(maxsize=16)
def _remote_fs(scheme: str, bucket: str, endpoint: str | None) -> pafs.FileSystem:
    # one filesystem object per bucket and endpoint: making an S3 client is not free
    return pafs.FileSystem.from_uri(f"{scheme}://{bucket}")[0]


def filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, the path inside it) of a local path or a URI."""
    s = location(path)
    if not is_remote(s):
        return _LOCAL, str(Path(s.removeprefix("file://")).expanduser().absolute())
    scheme, rest = s.split("://", 1)
    bucket = rest.split("/", 1)[0]
    for name in BUCKET_SECRET_ENVS:  # the run uses the bucket's credentials: they are secrets of it
        read_secret(name)
    return _remote_fs(scheme, bucket, os.environ.get("AWS_ENDPOINT_URL")), rest.rstrip("/")


def join(base: str | Path, *parts: str) -> str:
    """A path under `base`, as a string (a URI stays a URI)."""
    s = location(base)
    if is_remote(s):
        return "/".join([s.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(s).joinpath(*parts))


def _as_location(fs: pafs.FileSystem, inner: str, like: str | Path) -> str | Path:
    """A path found inside `fs`, in the form of `like` (Path locally, URI in an object store)."""
    if fs is _LOCAL:
        return Path(inner)
    return f"{location(like).split('://', 1)[0]}://{inner}"


def local_logs(run_dir: str | Path) -> Path:
    """Where a run's logs are written: `<run_dir>/logs`, or for a run dir in an object store (no
    append there) a local dir named by the run dir, whose files the CLI uploads to `<run_dir>/logs/`."""
    if not is_remote(run_dir):
        return Path(run_dir) / "logs"
    return Path(tempfile.gettempdir()) / "toolweave-logs" / hashlib.sha256(location(run_dir).encode()).hexdigest()[:16]


# --- small files (ledger owner tokens, markers) ----------------------------------------------

def write_text(path: str | Path, text: str) -> None:
    """Write a whole small file atomically (tmp + rename locally, one PUT in an object store)."""
    write_bytes(path, text.encode())


def read_text(path: str | Path) -> str | None:
    """The file's text, or None when there is no such file."""
    fs, inner = filesystem(path)
    try:
        with fs.open_input_stream(inner) as f:
            return f.read().decode()
    except FileNotFoundError:
        return None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a whole file atomically (tmp + rename locally, one PUT in an object store)."""
    fs, inner = filesystem(path)
    if fs is _LOCAL:
        target = Path(inner)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return
    with fs.open_output_stream(inner) as out:
        out.write(data)


def read_bytes(path: str | Path) -> bytes | None:
    fs, inner = filesystem(path)
    try:
        with fs.open_input_stream(inner) as f:
            return f.read()
    except FileNotFoundError:
        return None


def exists(path: str | Path) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def mtime(path: str | Path) -> float | None:
    """A file's modification time in seconds since the epoch (None when there is no such file)."""
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    return info.mtime.timestamp() if info.type == pafs.FileType.File and info.mtime is not None else None


def delete(path: str | Path) -> None:
    """Remove a file; a missing one is fine."""
    fs, inner = filesystem(path)
    try:
        fs.delete_file(inner)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class Entry:
    name: str
    path: str | Path  # Path locally, a URI in an object store
    mtime: float | None  # seconds since the epoch


def list_files(directory: str | Path) -> list[Entry]:
    """Files directly in `directory` (none when it does not exist), sorted by name."""
    return _entries(directory, pafs.FileType.File)


def list_dirs(directory: str | Path) -> list[Entry]:
    """Directories directly in `directory` (prefixes, in an object store), sorted by name."""
    return _entries(directory, pafs.FileType.Directory)


def _entries(directory: str | Path, kind: pafs.FileType) -> list[Entry]:
    fs, inner = filesystem(directory)
    try:
        infos = fs.get_file_info(pafs.FileSelector(inner, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((Entry(i.base_name, _as_location(fs, i.path, directory),
                         i.mtime.timestamp() if i.mtime is not None else None)
                   for i in infos if i.type == kind), key=lambda e: e.name)


# --- Parquet parts ---------------------------------------------------------------------------

def to_table(records: Iterable[Record], cls: type[Record]) -> pa.Table:
    rows = [redact_obj(r.to_row()) for r in records]  # every Parquet row passes here: no key is written
    return pa.Table.from_pylist(rows, schema=cls.ARROW)


def write_part(records: Iterable[Record], out_dir: str | Path, cls: type[Record],
               name: str | None = None) -> Path | str | None:
    """Write one part file; returns its path (None when there was nothing to write)."""
    filesystem(out_dir)  # first: a bucket's credentials are registered secrets before the rows are redacted
    return write_table_part(to_table(records, cls), out_dir, name)


def write_table_part(table: pa.Table, out_dir: str | Path, name: str | None = None) -> Path | str | None:
    """Write an Arrow table as one part file (atomically); None when it has no rows."""
    if table.num_rows == 0:
        return None
    fs, inner = filesystem(out_dir)
    filename = f"part-{name or uuid.uuid4().hex}.parquet"
    if fs is not _LOCAL:  # one object, visible whole or not at all
        pq.write_table(table, f"{inner}/{filename}", filesystem=fs)
        return join(out_dir, filename)
    out = Path(inner)
    out.mkdir(parents=True, exist_ok=True)
    final = out / filename
    tmp = out / f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def write_hashed_part(table: pa.Table, out_dir: str | Path, name: str, **parquet_options) -> str | None:
    """The part `name` holds exactly `table` (removed when it has no rows); returns the sha256 of the
    file's bytes as written (None when removed), hashed in memory before the one atomic write, so
    the digest is of what was meant, never of what a disk later returns."""
    path = join(out_dir, f"part-{name}.parquet")
    if table.num_rows == 0:
        delete(path)
        return None
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, **parquet_options)
    data = buf.getvalue().to_pybytes()
    write_bytes(path, data)  # tmp + rename locally, one PUT in an object store
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: str | Path) -> str | None:
    """The sha256 of a file's bytes, read in chunks (None when there is no such file)."""
    fs, inner = filesystem(path)
    h = hashlib.sha256()
    try:
        with fs.open_input_stream(inner) as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def replace_part(records: Iterable[Record], out_dir: str | Path, cls: type[Record],
                 name: str) -> Path | str | None:
    """The part `name` holds exactly `records`: written, or removed when there are none (a rerun
    or a retry that makes fewer kinds of record than the run before)."""
    path = write_part(records, out_dir, cls, name=name)
    if path is None:
        delete(join(out_dir, f"part-{name}.parquet"))
    return path


def part_files(path: str | Path) -> list[Path | str]:
    """The dataset's part files (all *.parquet below it, temporary ones left out), sorted."""
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.File:
        return [Path(path) if fs is _LOCAL else location(path)]
    if info.type == pafs.FileType.NotFound:
        return []
    found = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    parts = [i.path for i in found if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
             and not i.base_name.startswith(TMP_PREFIX)]
    if fs is _LOCAL:  # under the path as the caller gave it (relative stays relative)
        return sorted(Path(path) / Path(p).relative_to(inner) for p in parts)
    return sorted(_as_location(fs, p, path) for p in parts)


def iter_rows(path: str | Path, columns: list[str] | None = None) -> Iterator[dict]:
    for f in part_files(path):
        fs, inner = filesystem(f)
        with fs.open_input_file(inner) as source:
            pf = pq.ParquetFile(source)
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


def parquet_file(path: str | Path) -> pq.ParquetFile:
    """One Parquet file opened for its footer and reads, through the path's filesystem."""
    fs, inner = filesystem(path)
    return pq.ParquetFile(fs.open_input_file(inner))


def existing_ids(path: str | Path) -> set[str]:
    return {r["id"] for r in iter_rows(path, columns=["id"])}


# --- whole directories (a trained model: written locally, kept in the run dir) ------------------

def files_under(directory: str | Path) -> dict[str, tuple[int, float | None]]:
    """Every file below `directory` (recursively): {relative name: (size, mtime in seconds)}."""
    fs, inner = filesystem(directory)
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    return {i.path[len(inner):].lstrip("/"): (i.size, i.mtime.timestamp() if i.mtime is not None else None)
            for i in infos if i.type == pafs.FileType.File}


def upload_dir(local: str | Path, dest: str | Path, last: str | None = None) -> None:
    """Copy a local directory's files to `dest` (a local path or a URI); the file named `last` is
    copied after all the others (a marker: its presence means the rest is there)."""
    fs, inner = filesystem(dest)
    names = sorted(files_under(local), key=lambda n: n == last)
    for name in names:
        if fs is _LOCAL:
            Path(inner, name).parent.mkdir(parents=True, exist_ok=True)
        with open(Path(local) / name, "rb") as src, fs.open_output_stream(f"{inner}/{name}") as out:
            while chunk := src.read(1 << 24):
                out.write(chunk)


@contextlib.contextmanager
def local_dir_for(dest: str | Path, prefix: str = "toolweave-", last: str | None = None) -> Iterator[Path]:
    """A local dir to make `dest`'s files in, for writers of local files only (matplotlib, a saved
    encoder): `dest` itself when it is local, else a temporary dir uploaded to `dest` when the block
    ends (the file named `last` after the others)."""
    if not is_remote(dest):
        Path(dest).mkdir(parents=True, exist_ok=True)
        yield Path(dest)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as local:
        yield Path(local)
        upload_dir(local, dest, last=last)


def download_dir(src: str | Path, local: str | Path) -> None:
    """Copy every file below `src` (a local path or a URI) into the local directory `local`, each
    file keeping its modification time."""
    fs, inner = filesystem(src)
    for name, (_, mtime) in files_under(src).items():
        target = Path(local) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(f"{inner}/{name}") as source, open(target, "wb") as out:
            while chunk := source.read(1 << 24):
                out.write(chunk)
        if mtime is not None:
            os.utime(target, (mtime, mtime))
