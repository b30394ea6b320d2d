from toolweave import io
from toolweave.schemas import LedgerEntry, Reject
from toolweave.stages import ledger


def _rej(i):
    return Reject(id=i, stage="t", reason="r")


def test_commit_marks_inputs_done_and_retry_replaces(tmp_path):
    out, led = tmp_path / "out", tmp_path / "ledger"
    ledger.commit_batch("t", led, ["a", "b"], {out: (Reject, [_rej("a"), _rej("b")])})
    # a retried batch (same ids) replaces its parts instead of adding to them
    ledger.commit_batch("t", led, ["b", "a"], {out: (Reject, [_rej("a"), _rej("b")])})
    assert ledger.done_inputs(led) == {"a", "b"}
    assert sorted(r["id"] for r in io.iter_rows(out)) == ["a", "b"]


def test_a_retry_that_makes_other_kinds_clears_the_first_attempts_parts(tmp_path):
    from toolweave.schemas import Instruction
    out, rejects, led = tmp_path / "out", tmp_path / "rejects", tmp_path / "ledger"
    # first attempt: "a" was rejected, then the actor died before the ledger part
    io.write_part([_rej("a")], rejects, Reject, name=ledger.batch_key("t", ["a"]))
    # the retry (same ids, same key) makes an output for "a" and no reject
    ledger.commit_batch("t", led, ["a"], {out: (Instruction, [Instruction(id="a", text="q")]),
                                          rejects: (Reject, [])})
    assert [r["id"] for r in io.iter_rows(out)] == ["a"]
    assert not list(io.iter_rows(rejects)), "the first attempt's reject survived the retry"


def test_remove_orphans_keeps_committed_and_foreign_parts(tmp_path):
    out, led = tmp_path / "out", tmp_path / "ledger"
    ledger.commit_batch("t", led, ["a"], {out: (Reject, [_rej("a")])})
    # killed between the output part and the ledger part: an orphan
    io.write_part([_rej("b")], out, Reject, name=ledger.batch_key("t", ["b"]))
    io.write_part([_rej("x")], out, Reject, name="imported")  # another writer's part
    io.write_part([_rej("y")], out, Reject, name=ledger.batch_key("other", ["y"]))  # another stage's
    removed = ledger.remove_orphans("t", led, [out])
    assert [p.name for p in removed] == [f"part-{ledger.batch_key('t', ['b'])}.parquet"]
    assert sorted(r["id"] for r in io.iter_rows(out)) == ["a", "x", "y"]


def test_a_stale_runs_commit_is_refused_once_a_rerun_claims_the_stage(tmp_path):
    import pytest
    out, led = tmp_path / "out", tmp_path / "ledger"
    old = ledger.claim(led, grace_s=0)
    new = ledger.claim(led, grace_s=0)  # the rerun after a kill
    with pytest.raises(ledger.StaleRunError):
        ledger.commit_batch("t", led, ["a"], {out: (Reject, [_rej("a")])}, token=old)
    assert not list(io.iter_rows(out)) and not ledger.done_inputs(led)
    ledger.commit_batch("t", led, ["a"], {out: (Reject, [_rej("a")])}, token=new)
    ledger.release(led, new)
    assert ledger.done_inputs(led) == {"a"} and not (led / ledger.OWNER_FILE).exists()


def _flip_in(path, needle: bytes) -> None:
    """Flip one bit in the middle of the first occurrence of `needle` in the file's bytes."""
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_ledger_entrys_id_is_named_and_its_whole_batch_removed(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    out, led = tmp_path / "out", tmp_path / "ledger"
    real_write = pq.write_table
    monkeypatch.setattr(pq, "write_table", lambda t, w, **kw: real_write(t, w, compression="none", **kw))
    ledger.commit_batch("t", led, ["input-aaaa", "input-bbbb"], {out: (Reject, [_rej("input-aaaa"), _rej("input-bbbb")])})
    ledger.commit_batch("t", led, ["input-cccc"], {out: (Reject, [_rej("input-cccc")])})
    victim = led / f"part-{ledger.batch_key('t', ['input-aaaa', 'input-bbbb'])}.parquet"
    _flip_in(victim, b"input-bbbb")
    # still valid Parquet: without its checksum, the batch would pass and "input-bbbb" be done again
    assert sorted(pq.read_table(victim)["id"].to_pylist()) == ["input,bbbb", "input-aaaa"]
    seen: list[str] = []
    redone = ledger.verify("t", led, [out], seen.append)
    assert seen == redone and len(redone) == 1
    assert redone[0].startswith(f"ledger entry {victim} is damaged") and "\n" not in redone[0]
    # neither the damaged entry nor its batch's output part is left: its inputs are done again, once
    assert ledger.done_inputs(led) == {"input-cccc"}
    assert sorted(r["id"] for r in io.iter_rows(out)) == ["input-cccc"]


def test_each_damaged_part_of_a_batch_is_named_on_its_own_line(tmp_path):
    out, rejects, led = tmp_path / "out", tmp_path / "rejects", tmp_path / "ledger"
    from toolweave.schemas import Instruction
    ledger.commit_batch("t", led, ["a", "b"], {out: (Instruction, [Instruction(id="a", text="q")]),
                                               rejects: (Reject, [_rej("b")])})
    key = ledger.batch_key("t", ["a", "b"])
    for part in (out / f"part-{key}.parquet", rejects / f"part-{key}.parquet"):
        data = part.read_bytes()
        third = len(data) // 3
        part.write_bytes(data[:third] + b"\xff" * 16 + data[third + 16:])  # overwritten at a third
    redone = ledger.verify("t", led, [out, rejects])
    assert [line.split(" is damaged")[0] for line in redone] == [
        f"committed part {out / f'part-{key}.parquet'}", f"committed part {rejects / f'part-{key}.parquet'}"]
    assert not ledger.done_inputs(led) and not list(out.iterdir()) and not list(rejects.iterdir())


def test_a_missing_part_the_ledger_lists_is_named(tmp_path):
    out, led = tmp_path / "out", tmp_path / "ledger"
    ledger.commit_batch("t", led, ["a"], {out: (Reject, [_rej("a")])})
    part = out / f"part-{ledger.batch_key('t', ['a'])}.parquet"
    part.unlink()
    (line,) = ledger.verify("t", led, [out])
    assert line.startswith(f"committed part {part} is missing (its ledger entry lists it)")
    assert not ledger.done_inputs(led)


def test_a_ledger_from_before_checksums_is_still_read_and_said_to_be_unverified_once(tmp_path):
    out, led = tmp_path / "out", tmp_path / "ledger"
    for ids in (["a"], ["b"]):  # as the old commit wrote them: no checksums in the ledger part
        key = ledger.batch_key("t", ids)
        io.write_part([_rej(i) for i in ids], out, Reject, name=key)
        io.write_part([LedgerEntry(id=i, outputs=[i]) for i in ids], led, LedgerEntry, name=key)
    seen: list[str] = []
    assert ledger.verify("t", led, [out], seen.append) == []
    assert seen == [f"2 committed batches in {led} predate checksums: checked by their footers and row counts only"]
    assert ledger.done_inputs(led) == {"a", "b"}
    # their old checks still hold: a part one row short is redone
    key = ledger.batch_key("t", ["a"])
    io.write_part([], out, Reject, name=key)
    (out / f"part-{key}.parquet").unlink()
    redone = ledger.verify("t", led, [out])
    assert redone == [f"committed parts part-{key}.parquet hold 0 rows, the ledger lists 1: its batch's parts are "
                      f"removed and its inputs done again"]
    assert ledger.done_inputs(led) == {"b"}


def test_commit_records_the_sha256_of_the_bytes_it_wrote(tmp_path):
    import hashlib
    out, led = tmp_path / "out", tmp_path / "ledger"
    key = ledger.commit_batch("t", led, ["a"], {out: (Reject, [_rej("a")]), tmp_path / "none": (Reject, [])})
    rows, parts = ledger.read_ledger_part(led / f"part-{key}.parquet")
    assert [r["id"] for r in rows] == ["a"]
    assert parts == {"out": hashlib.sha256((out / f"part-{key}.parquet").read_bytes()).hexdigest()}


def test_an_orphaned_workers_commit_is_refused_once_its_driver_stops_renewing(tmp_path, monkeypatch):
    import os
    import time

    import pytest
    out, led = tmp_path / "out", tmp_path / "ledger"
    monkeypatch.setattr(ledger, "LEASE_S", 0.6)
    token = ledger.claim(led, grace_s=0)
    lease = ledger.OwnerLease(led, token, every_s=0.1).start()
    time.sleep(1.0)  # longer than a lease: a live driver's renewals keep its workers committing
    ledger.commit_batch("t", led, ["a"], {out: (Reject, [_rej("a")])}, token=token)
    lease.stop()  # the driver is SIGKILLed: nothing renews its claim, and no rerun comes
    owner = led / ledger.OWNER_FILE
    os.utime(owner, (time.time() - 5, time.time() - 5))
    with pytest.raises(ledger.StaleRunError, match="has not renewed its claim for 5 s"):
        ledger.commit_batch("t", led, ["b"], {out: (Reject, [_rej("b")])}, token=token)
    assert ledger.done_inputs(led) == {"a"} and [r["id"] for r in io.iter_rows(out)] == ["a"]
    assert owner.read_text() == token  # the claim itself is left for the rerun to take over


def test_a_lease_stops_renewing_once_a_rerun_claims_the_stage(tmp_path):
    import time
    led = tmp_path / "ledger"
    old = ledger.claim(led, grace_s=0)
    lease = ledger.OwnerLease(led, old, every_s=0.05).start()
    new = ledger.claim(led, grace_s=0)
    time.sleep(0.3)
    assert (led / ledger.OWNER_FILE).read_text() == new and not lease._thread.is_alive()
    lease.stop()
