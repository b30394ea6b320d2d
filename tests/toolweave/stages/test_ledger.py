from toolweave import io
from toolweave.schemas import Reject
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
