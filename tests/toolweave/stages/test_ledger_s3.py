"""The ledger's commit protocol with the run dir in an S3-compatible store (moto's server on
127.0.0.1), on the in-process runner: owner token, commits, a killed run's uncommitted batch and
in-flight marker, orphans, settings and the summary all in the bucket; every record once."""
import json
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction
from toolweave.stages import ledger, probe
from toolweave.stages.local import run_local
from toolweave.testing.fake_llm import FakeChatModel

DATA = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"


@pytest.fixture
def s3_run_dir(tmp_path):
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root:
        yield f"{root}/runs/{tmp_path.name}"


def test_a_killed_run_on_s3_is_resumed_exactly_once(s3_run_dir):
    from toolweave.authoring.instructions import import_toolbench_queries
    _, instrs, _ = import_toolbench_queries(DATA, stage="instructions")
    io.write_part(instrs, io.join(s3_run_dir, "instructions"), Instruction, name="input")
    cfg = RunConfig(run_dir=s3_run_dir, run={"batch_size": 2})
    assert run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "ok")})["processed"] == len(instrs)
    led = io.join(s3_run_dir, "_ledger", "probe")
    keys = sorted(ledger.committed_keys(led))
    assert len(keys) == -(-len(instrs) // 2) and not io.exists(io.join(led, ledger.OWNER_FILE))  # released

    # a kill: one batch's outputs written, its ledger part (the commit marker) not; the owner token
    # and an in-flight marker left behind
    victim = keys[0]
    io.delete(io.join(led, f"part-{victim}.parquet"))
    io.write_text(io.join(led, ledger.OWNER_FILE), "the killed run's token")
    ledger.mark_in_flight(led, victim, ["x"])
    assert io.exists(io.join(s3_run_dir, "episodes", f"part-{victim}.parquet"))  # an orphan now
    summary = run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "again")})
    assert summary["processed"] == 2 and summary["skipped_already_done"] == len(instrs) - 2
    ids = [r["id"] for r in io.iter_rows(io.join(s3_run_dir, "episodes"), columns=["id"])]
    assert len(ids) == len(set(ids)) == len(instrs)
    assert ledger.done_inputs(led) == {i.id for i in instrs} and not ledger.in_flight(led)
    assert json.loads(io.read_text(io.join(s3_run_dir, "probe_summary.json")))["processed"] == 2
    again = [e for e in io.read_records(io.join(s3_run_dir, "episodes"), Episode)[0] if e.final_answer == "again"]
    assert len(again) == 2  # exactly the uncommitted batch was redone

    # the settings that shape the output are kept in the bucket too
    ledger.check_settings(led, "probe", {"solve.width": 2})  # a setting an older ledger lacks: taken as this
    with pytest.raises(ledger.SettingsChanged):
        ledger.check_settings(led, "probe", {"solve.width": 3})
