"""The run dir on a local path and in an S3-compatible store (moto's server on 127.0.0.1): the
same io calls write, list, read, replace and delete parts and markers on both."""
from pathlib import Path

import pytest

from toolweave import io
from toolweave.schemas import Reject


@pytest.fixture(scope="module")
def s3_root():
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root:
        yield root


@pytest.fixture(params=["local", "s3"])
def run_dir(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "run")
    return f"{request.getfixturevalue('s3_root')}/{tmp_path.name}/run"


def _rejects(*ids):
    return [Reject(id=i, stage="solve", reason=f"reason {i}") for i in ids]


def test_parts_are_written_listed_read_replaced_and_removed(run_dir):
    out = io.join(run_dir, "episodes_rejects")
    assert io.part_files(out) == [] and io.read_records(out, Reject) == ([], [])
    first = io.write_part(_rejects("a", "b"), out, Reject, name="solve-1")
    io.write_part(_rejects("c"), out, Reject, name="solve-2")
    assert str(first).endswith("episodes_rejects/part-solve-1.parquet")
    assert [Path(str(p)).name for p in io.part_files(out)] == ["part-solve-1.parquet", "part-solve-2.parquet"]
    assert io.read_records(out, Reject) == (_rejects("a", "b", "c"), []) and io.existing_ids(out) == {"a", "b", "c"}
    io.replace_part(_rejects("b"), out, Reject, name="solve-1")  # a retry: same name, its own rows
    assert io.existing_ids(out) == {"b", "c"}
    io.replace_part([], out, Reject, name="solve-2")  # a retry that made none of these
    assert io.existing_ids(out) == {"b"}
    assert [e.name for e in io.list_files(out)] == ["part-solve-1.parquet"]


def test_markers_and_small_files(run_dir):
    ledger = io.join(run_dir, "_ledger", "solve")
    owner = io.join(ledger, "OWNER")
    assert io.read_text(owner) is None and not io.exists(owner)
    io.write_text(owner, "token-1")
    io.write_text(owner, "token-2")  # replaced whole
    assert io.read_text(owner) == "token-2" and io.exists(owner)
    entries = io.list_files(ledger)
    assert [e.name for e in entries] == ["OWNER"] and entries[0].mtime is not None
    io.write_bytes(io.join(run_dir, "tool_cache.sqlite"), b"\x00snapshot")
    assert io.read_bytes(io.join(run_dir, "tool_cache.sqlite")) == b"\x00snapshot"
    io.delete(owner)
    io.delete(owner)  # gone already: fine
    assert io.read_text(owner) is None and io.list_files(ledger) == []


def test_a_uri_joined_by_pathlib_is_still_the_uri(s3_root):
    run = Path(f"{s3_root}/joined")  # RunConfig.path: Path(run_dir).joinpath(...)
    out = run / "instructions"
    assert str(out).startswith("s3:/") and io.location(out) == f"{s3_root}/joined/instructions"
    io.write_part(_rejects("x"), out, Reject, name="p")
    assert io.part_files(out) == [f"{s3_root}/joined/instructions/part-p.parquet"]
    assert io.read_records(out, Reject) == (_rejects("x"), [])


def test_write_then_marker_readers_trust_only_committed_parts(run_dir):
    """The commit protocol where there is no rename: data parts first, then the marker (the
    ledger's entry); a batch whose marker is missing is an orphan that a rerun removes."""
    data, ledger = io.join(run_dir, "episodes"), io.join(run_dir, "_ledger", "solve")
    io.write_part(_rejects("a"), data, Reject, name="solve-k1")
    io.write_part(_rejects("a"), ledger, Reject, name="solve-k1")  # marker: batch k1 committed
    io.write_part(_rejects("b"), data, Reject, name="solve-k2")  # killed before its marker
    committed = {e.name for e in io.list_files(ledger)}
    orphans = [e for e in io.list_files(data) if e.name not in committed]
    assert [e.name for e in orphans] == ["part-solve-k2.parquet"]
    for e in orphans:
        io.delete(e.path)
    assert io.existing_ids(data) == {"a"}


@pytest.mark.integration
def test_ray_data_reads_the_parts_io_lists_in_the_object_store(s3_root, tmp_path):
    """What a record stage's pipeline does with its inputs: read_parquet over io.part_files."""
    import os

    import ray
    out = f"{s3_root}/{tmp_path.name}/instructions"
    io.write_part(_rejects("a", "b"), out, Reject, name="1")
    io.write_part(_rejects("c"), out, Reject, name="2")
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}  # the workers reach the same store
    ray.init(address="local", num_cpus=2, object_store_memory=80_000_000, include_dashboard=False,
             runtime_env={"env_vars": env})
    try:
        ids = sorted(r["id"] for r in ray.data.read_parquet(io.part_files(out)).iter_rows())
    finally:
        ray.shutdown()
    assert ids == ["a", "b", "c"]


def test_a_directory_is_uploaded_and_downloaded_with_its_times(run_dir, tmp_path):
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "weights.bin").write_bytes(b"\x00" * 1000)
    (src / "DONE").write_text("complete")
    dest = io.join(run_dir, "model")
    io.upload_dir(src, dest, last="DONE")
    assert sorted(io.files_under(dest)) == ["DONE", "config.json", "sub/weights.bin"]
    assert io.files_under(dest)["sub/weights.bin"][0] == 1000
    times = {name: mtime for name, (_, mtime) in io.files_under(dest).items()}
    back = tmp_path / "back"
    io.download_dir(dest, back)
    assert (back / "sub" / "weights.bin").read_bytes() == b"\x00" * 1000 and (back / "DONE").read_text() == "complete"
    assert (back / "config.json").stat().st_mtime == pytest.approx(times["config.json"], abs=1e-3)


def test_a_path_in_the_object_store_registers_the_buckets_secrets(s3_root, tmp_path, monkeypatch):
    from toolweave import secrets
    from toolweave.testing.object_store import ENV
    token = "FwoGZXIvYXdzEJr-session-Tq93LmXa"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    key = ENV["AWS_SECRET_ACCESS_KEY"]
    with secrets.isolated():
        assert secrets.redact(token) == token  # not registered yet (the key may be: the module's fixture)
        out = io.join(s3_root, tmp_path.name, "run", "episodes_rejects")
        io.write_part([Reject(id="r1", stage="solve", reason=f"denied: key {key[-10:]}, token {token}")], out, Reject)
        assert secrets.redact(f"{key} {token}") == "*** ***"
        [rec], bad = io.read_records(out, Reject)
    assert not bad and rec.reason == "denied: key ***, token ***"  # the Parquet sink redacted both
