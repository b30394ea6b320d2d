"""The in-process runner over real ToolBench queries: outputs, failures as records, resume."""
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction, Reject
from toolweave.stages import ledger
from toolweave.stages import probe
from toolweave.stages.local import run_local
from toolweave.stages.probe import CALLS_PER_EPISODE
from toolweave.testing.fake_llm import FakeChatModel

DATA = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction"


def _instructions(run_dir: Path) -> list[Instruction]:
    from toolweave.authoring.instructions import import_toolbench_queries
    instrs = []
    for name in ("G1_query.json", "G2_query.json", "G3_query.json"):
        _, got, _ = import_toolbench_queries(DATA / name, stage="instructions")
        instrs += got
    instrs = [i.model_copy(update={"extra": {**i.extra, CALLS_PER_EPISODE: 2}}) for i in instrs]
    io.write_part(instrs, run_dir / "instructions", Instruction, name="input")
    return instrs


def _run(cfg, llm):
    return run_local(cfg, probe.STAGE, {"default": llm})


def test_probe_stage_writes_one_episode_per_instruction_and_resumes(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 3})
    instrs = _instructions(tmp_path)
    assert len(instrs) == 10
    llm = FakeChatModel(handler=lambda req: "ok")
    summary = _run(cfg, llm)
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad
    assert sorted(e.instruction_id for e in eps) == sorted(i.id for i in instrs)
    assert all(e.llm_calls == 2 and e.status == "answered" for e in eps)
    assert summary["processed"] == 10 and summary["failed"] == 0 and summary["llm_calls"] == 20
    assert (tmp_path / "probe_summary.json").exists()

    again = _run(cfg, llm)  # a rerun finds everything done: no call, no new part
    assert again["processed"] == 0 and again["skipped_already_done"] == 10
    assert len(llm.requests) == 20
    assert len(io.existing_ids(tmp_path / "episodes")) == len(list(io.iter_rows(tmp_path / "episodes"))) == 10


def test_failures_become_records_and_duplicates_are_rejected(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 4})
    instrs = _instructions(tmp_path)
    io.write_part([instrs[0]], tmp_path / "instructions", Instruction, name="dup")  # same id twice
    doomed = instrs[3].text

    def handler(req):
        if req["messages"][0]["content"] == doomed:
            raise ConnectionError("endpoint went away")
        return "ok"

    summary = _run(cfg, FakeChatModel(handler=handler))
    eps, _ = io.read_records(tmp_path / "episodes", Episode)
    by_ins = {e.instruction_id: e for e in eps}
    assert instrs[0].id not in by_ins  # which copy was meant cannot be told: none is processed
    failed = by_ins[instrs[3].id]
    assert failed.status == "error" and "ConnectionError: endpoint went away" in failed.errors[0]
    assert len(eps) == 9 and summary["failed"] == 1
    assert summary["failures_by_reason"] == {"ConnectionError": 1}
    rejects, _ = io.read_records(tmp_path / "episodes_rejects", Reject)
    assert [r.record for r in rejects] == [instrs[0].id] and "occurs 2 times" in rejects[0].reason
    _run(cfg, FakeChatModel(handler=handler))  # a rerun names the duplicate once, still
    assert [r.record for r in io.read_records(tmp_path / "episodes_rejects", Reject)[0]] == [instrs[0].id]


def test_a_record_parquet_cannot_hold_becomes_a_reject_and_the_batch_lands(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 4})
    instrs = _instructions(tmp_path)
    broken = instrs[2].text
    # a lone surrogate: valid in JSON ("\ud83d"), not encodable as UTF-8, so not in Parquet
    summary = _run(cfg, FakeChatModel(handler=lambda req: "\ud83d" if req["messages"][0]["content"] == broken
                                      else "ok"))
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad and sorted(e.instruction_id for e in eps) == sorted(i.id for i in instrs if i.text != broken)
    rejects, _ = io.read_records(tmp_path / "episodes_rejects", Reject)
    (rej,) = rejects
    assert instrs[2].id in rej.reason and "UnicodeEncodeError" in rej.reason and "\\ud83d" in rej.record
    assert ledger.done_inputs(tmp_path / "_ledger" / "probe") == {i.id for i in instrs}
    assert summary["processed"] == len(instrs)


def test_rerun_after_a_kill_between_output_and_ledger_writes_nothing_twice(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 4})
    instrs = _instructions(tmp_path)
    _run(cfg, FakeChatModel(handler=lambda req: "ok"))
    # simulate a kill: drop the ledger entry of one batch, so its outputs look uncommitted
    led = tmp_path / "_ledger" / "probe"
    victim = sorted(led.glob("part-*.parquet"))[0]
    victim.unlink()
    llm = FakeChatModel(handler=lambda req: "again")
    summary = _run(cfg, llm)
    assert 0 < summary["processed"] <= 4
    ids = [r["id"] for r in io.iter_rows(tmp_path / "episodes")]
    assert len(ids) == len(set(ids)) == len(instrs)
    assert ledger.done_inputs(led) == {i.id for i in instrs}


@pytest.mark.parametrize("stage", ["simulate", "solve"])
def test_episode_stage_without_inputs_names_the_missing_dataset(tmp_path, stage):
    from toolweave.stages.registry import STAGES
    with pytest.raises(ValueError, match="no input dataset"):
        run_local(RunConfig(run_dir=str(tmp_path)), STAGES[stage], {})


def test_a_record_that_hangs_or_raises_is_failed_by_id_and_the_stage_finishes(tmp_path):
    import asyncio
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 4, "record_timeout_s": 0.5})
    instrs = _instructions(tmp_path)
    hangs, raises = instrs[1], instrs[6]

    async def handler(req):
        text = req["messages"][0]["content"]
        if text == hangs.text:
            await asyncio.Event().wait()  # never answers (a worker bug, an await without a timeout)
        if text == raises.text:
            raise ZeroDivisionError("poison")
        return "ok"

    class AsyncFake(FakeChatModel):
        async def chat(self, messages, **kw):
            await handler({"messages": messages})
            return await super().chat(messages, **kw)

    summary = _run(cfg, AsyncFake(handler=lambda req: "ok"))
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    by_ins = {e.instruction_id: e for e in eps}
    assert not bad and len(eps) == 10 and summary["processed"] == 10 and summary["failed"] == 2
    assert by_ins[hangs.id].status == "error" and "run.record_timeout_s=0.5s" in by_ins[hangs.id].errors[0]
    assert hangs.id in by_ins[hangs.id].errors[0]
    assert "ZeroDivisionError: poison" in by_ins[raises.id].errors[0]
    assert sum(e.status == "answered" for e in eps) == 8
    assert set(ledger.done_inputs(tmp_path / "_ledger" / "probe")) == {i.id for i in instrs}
