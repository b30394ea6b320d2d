"""toolweave.safe_read: regular files only, a size cap, and a time limit that holds during a blocking read."""
import os
import socket
import time

import pytest

from toolweave import safe_read
from toolweave.safe_read import UnreadableFile


def test_a_regular_file_and_a_link_to_one_are_read(tmp_path):
    (tmp_path / "a.json").write_bytes(b'{"x": 1}')
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    assert safe_read.read_bytes(tmp_path / "a.json") == b'{"x": 1}'
    assert safe_read.read_text(tmp_path / "link.json") == '{"x": 1}'
    assert safe_read.regular_file_problem(tmp_path / "a.json") is None


def _special_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "to_pipe.json").symlink_to(tmp_path / "pipe.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.json"))
    (tmp_path / "dir.json").mkdir()
    return sock, {"pipe.json": "a FIFO", "to_pipe.json": "a FIFO", "zero.json": "a character device",
                  "sock.json": "a socket", "dir.json": "a folder"}


def test_special_files_are_refused_by_name_without_waiting(tmp_path):
    sock, kinds = _special_files(tmp_path)
    try:
        for name, kind in kinds.items():
            t = time.monotonic()
            with pytest.raises(UnreadableFile) as e:
                safe_read.read_bytes(tmp_path / name, timeout_s=5)
            assert time.monotonic() - t < 1, name
            assert str(tmp_path / name) in str(e.value) and kind in str(e.value), str(e.value)
            assert kind in safe_read.regular_file_problem(tmp_path / name)
    finally:
        sock.close()


def test_a_file_over_the_cap_is_refused_and_missing_files_say_so(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(2_000_001)  # sparse: no disk used
    with pytest.raises(UnreadableFile, match="2000001 bytes, over the limit of 2000000"):
        safe_read.read_bytes(big, max_bytes=2_000_000)
    assert len(safe_read.read_bytes(big, max_bytes=2_000_001)) == 2_000_001
    with pytest.raises(FileNotFoundError):
        safe_read.read_bytes(tmp_path / "nope.json")


def test_the_time_limit_holds_during_a_read_that_blocks(tmp_path, monkeypatch):
    """A read stuck in the kernel (here a blocking open of a FIFO, as a hung NFS or FUSE mount would
    be) costs the caller the time limit, then a clear error."""
    pipe = tmp_path / "stuck"
    os.mkfifo(pipe)

    def stuck_read(path, max_bytes):
        with open(pipe, "rb") as f:  # blocks until a writer comes
            return f.read()

    monkeypatch.setattr(safe_read, "_read", stuck_read)
    t = time.monotonic()
    with pytest.raises(UnreadableFile, match="not read within 0.3 s") as e:
        safe_read.read_bytes(tmp_path / "a.json", timeout_s=0.3)
    assert 0.3 <= time.monotonic() - t < 2
    assert e.value.filename == str(tmp_path / "a.json")
    os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))  # lets the abandoned thread finish


def _fifo_callers():
    from toolweave.config import RunConfig, load_config
    from toolweave.authoring.instructions import import_toolbench_queries, load_seeds
    from toolweave.placement import node_kinds
    from toolweave.retrieval.corpus import read_test_ids
    from toolweave.stages.build_toolset import _import_catalogue

    def catalogue(path):
        _import_catalogue(RunConfig.model_validate({"toolsets": {"catalogue": str(path)}}))

    def queries(path):  # a bad query file is a reject, not an exception
        raise ValueError(import_toolbench_queries(path, stage="instructions")[2][0].reason)

    return {"config": load_config, "seeds": load_seeds, "cluster yaml": node_kinds, "test ids": read_test_ids,
            "catalogue": catalogue, "toolbench queries": queries}


def test_every_file_a_config_names_is_refused_when_it_is_a_fifo(tmp_path):
    """Configs, clusters, seed/query/test-id files and catalogues: a FIFO is an error naming it, at once."""
    pipe = tmp_path / "named.json"
    os.mkfifo(pipe)
    for name, read in _fifo_callers().items():
        t = time.monotonic()
        with pytest.raises((OSError, ValueError)) as e:
            read(pipe)
        assert time.monotonic() - t < 2, name
        assert "a FIFO" in str(e.value) and str(pipe) in str(e.value), (name, str(e.value))
