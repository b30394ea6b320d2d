"""Resume keyed by the settings that shape a stage's output, and `--retry-failed`."""
import dataclasses
import json
from pathlib import Path

import pytest

from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Episode, Instruction
from toolweave.stages import ledger, probe
from toolweave.stages.local import run_local
from toolweave.stages.probe import CALLS_PER_EPISODE
from toolweave.stages.registry import STAGES
from toolweave.testing.fake_llm import FakeChatModel

DATA = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction"
# the probe, declared as shaped by solve.method (its records do not depend on it: the mechanism does)
SHAPED_PROBE = dataclasses.replace(probe.STAGE, shaped_by=("solve.method", "solve.width"))


def _instructions(run_dir: Path) -> list[Instruction]:
    from toolweave.authoring.instructions import import_toolbench_queries
    _, instrs, _ = import_toolbench_queries(DATA / "G1_query.json", stage="instructions")
    instrs = [i.model_copy(update={"extra": {CALLS_PER_EPISODE: 1}}) for i in instrs]
    io.write_part(instrs, run_dir / "instructions", Instruction, name="input")
    return instrs


def test_stages_declare_the_settings_that_shape_their_output():
    assert "solve.method" in STAGES["solve"].shaped_by and "simulate.protocol" in STAGES["simulate"].shaped_by
    cfg = RunConfig(solve={"method": "cot"})
    shaping = STAGES["solve"].shaping_settings(cfg)
    assert shaping["solve.method"] == "cot" and shaping["solve.depth_unit"] == cfg.solve.depth_unit
    assert set(shaping) == {f"solve.{k}" for k in cfg.solve.model_fields} - {"solve.splits"}  # splits: select


def test_a_rerun_with_other_output_settings_stops_and_says_what_changed(tmp_path):
    _instructions(tmp_path)
    llm = FakeChatModel(handler=lambda req: "ok")
    first = run_local(RunConfig(run_dir=str(tmp_path), solve={"method": "dfsdt"}), SHAPED_PROBE, {"default": llm})
    assert first["processed"] == 5
    cfg = RunConfig(run_dir=str(tmp_path), solve={"method": "cot", "width": 3})
    with pytest.raises(ledger.SettingsChanged) as e:
        run_local(cfg, SHAPED_PROBE, {"default": llm})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("stage probe: this run dir's records were made with other settings")
    assert "solve.method was 'dfsdt', now 'cot'; solve.width was 2, now 3" in msg
    assert len(llm.requests) == 5  # nothing was run again under the other settings
    # the same settings resume as before; settings that shape nothing (solve.splits) change nothing
    same = RunConfig(run_dir=str(tmp_path), solve={"method": "dfsdt", "splits": ["train"]})
    assert run_local(same, SHAPED_PROBE, {"default": llm})["skipped_already_done"] == 5


def test_retry_failed_reruns_exactly_the_failed_records_once(tmp_path):
    instrs = _instructions(tmp_path)
    doomed = {instrs[1].text, instrs[3].text}

    def flaky(req):
        if req["messages"][0]["content"] in doomed:
            raise ConnectionError("endpoint went away")
        return "ok"

    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 2})
    first = run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=flaky)})
    assert first["failed"] == 2
    led = tmp_path / "_ledger" / "probe"
    assert {r["id"] for r in io.iter_rows(led) if not r["ok"]} == {instrs[1].id, instrs[3].id}

    plain = FakeChatModel(handler=lambda req: "fixed")
    assert run_local(cfg, probe.STAGE, {"default": plain})["processed"] == 0  # failures are final by default
    retry = cfg.model_copy(update={"run": cfg.run.model_copy(update={"retry_failed": True})})
    again = run_local(retry, probe.STAGE, {"default": plain})
    assert again["processed"] == 2 and again["failed"] == 0 and again["skipped_already_done"] == 3
    assert sorted(r["messages"][0]["content"] for r in plain.requests) == sorted(doomed)
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad and len(eps) == len({e.id for e in eps}) == 5, "an error row was kept beside its retry"
    assert all(e.status == "answered" for e in eps)
    assert {e.instruction_id: e.final_answer for e in eps}[instrs[1].id] == "fixed"
    assert all(r["ok"] for r in io.iter_rows(led)) and ledger.done_inputs(led) == {i.id for i in instrs}
    assert not (led / ledger.RETRY_FILE).exists()
    assert run_local(retry, probe.STAGE, {"default": plain})["processed"] == 0  # nothing failed: nothing rerun


def test_a_killed_retry_is_finished_by_the_next_run(tmp_path):
    instrs = _instructions(tmp_path)

    def first_fails(req):
        if req["messages"][0]["content"] == instrs[0].text:
            raise ConnectionError("down")
        return "ok"

    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 5})
    run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=first_fails)})
    led = tmp_path / "_ledger" / "probe"
    # a --retry-failed run killed right after planning the removal: nothing removed yet
    (key,) = [p.stem.removeprefix("part-") for p in led.glob("part-*.parquet")]
    (led / ledger.RETRY_FILE).write_text(
        '{"%s": {"inputs": ["%s"], "outputs": ["%s--probe"]}}' % (key, instrs[0].id, instrs[0].id))
    summary = run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "ok")})
    assert summary["processed"] == 1 and summary["failed"] == 0
    eps, _ = io.read_records(tmp_path / "episodes", Episode)
    assert len(eps) == 5 and all(e.status == "answered" for e in eps)


@pytest.mark.parametrize("broken", ["episodes", "_ledger/probe"])
def test_a_truncated_committed_part_is_named_and_its_batch_done_again(tmp_path, broken, caplog):
    instrs = _instructions(tmp_path)
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 2})
    run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "ok")})
    victim = sorted((tmp_path / broken).glob("part-probe-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:-30])  # cut off the footer, as a full disk or a kill might
    llm = FakeChatModel(handler=lambda req: "again")
    with caplog.at_level("WARNING", logger="toolweave.stages"):
        summary = run_local(cfg, probe.STAGE, {"default": llm})
    (line,) = summary["redone_batches"]
    assert str(victim) in line and "cannot be read" in line and str(victim) in caplog.text
    assert summary["processed"] == 2 and len(llm.requests) == 2
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad and sorted(e.instruction_id for e in eps) == sorted(i.id for i in instrs)


def test_a_part_with_missing_rows_is_done_again(tmp_path):
    import pyarrow.parquet as pq
    _instructions(tmp_path)
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 2})
    run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "ok")})
    victim = sorted((tmp_path / "episodes").glob("part-probe-*.parquet"))[0]
    pq.write_table(pq.read_table(victim).slice(0, 1), victim)  # readable, one row short
    summary = run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "again")})
    (line,) = summary["redone_batches"]
    assert f"committed part {victim} is damaged: sha256 mismatch; 1 rows read" in line and summary["processed"] == 2
    assert len(io.existing_ids(tmp_path / "episodes")) == len(list(io.iter_rows(tmp_path / "episodes"))) == 5


def test_the_damage_is_named_before_its_ledger_entry_is_deleted(tmp_path):
    # a run killed right after the delete must not take the only report of the damage with it
    _instructions(tmp_path)
    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 2})
    run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "ok")})
    led = tmp_path / "_ledger" / "probe"
    victim = sorted(led.glob("part-probe-*.parquet"))[0]
    victim.write_bytes(b"")
    seen: list[tuple[str, bool]] = []
    redone = ledger.verify("probe", led, [tmp_path / "episodes"], lambda line: seen.append((line, victim.exists())))
    assert seen == [(redone[0], True)] and str(victim) in redone[0] and not victim.exists()


def test_a_run_whose_stage_is_claimed_by_another_stops_committing(tmp_path):
    # the commit path of the in-process runner (stages.base.commit, as the Ray actors use) checks the
    # owner token: once a rerun has claimed the stage, this run's next batch is refused, not written
    _instructions(tmp_path)
    led = tmp_path / "_ledger" / "probe"
    calls = []

    def taken_over_after_two(req):
        calls.append(req)
        if len(calls) == 3:  # the first batch is committed; a rerun claims the stage now
            ledger.claim(led, grace_s=0)
        return "ok"

    cfg = RunConfig(run_dir=str(tmp_path), run={"batch_size": 2, "max_in_flight": 1})
    with pytest.raises(ledger.StaleRunError, match="another run owns this stage now"):
        run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=taken_over_after_two)})
    assert len(ledger.done_inputs(led)) == 2 and len(list(io.iter_rows(tmp_path / "episodes"))) == 2


def test_a_setting_newly_keying_resume_is_taken_as_the_current_value(tmp_path):
    """A SETTINGS.json written before a setting joined `shaped_by` (solve.depth_unit did) resumes;
    a recorded one that differs still stops."""
    _instructions(tmp_path)
    llm = FakeChatModel(handler=lambda req: "ok")
    cfg = RunConfig(run_dir=str(tmp_path), solve={"method": "dfsdt"})
    run_local(cfg, SHAPED_PROBE, {"default": llm})
    settings = tmp_path / "_ledger" / SHAPED_PROBE.name / ledger.SETTINGS_FILE
    older = json.loads(settings.read_text())
    older.pop("solve.width")
    settings.write_text(json.dumps(older))
    assert run_local(cfg, SHAPED_PROBE, {"default": llm})["skipped_already_done"] == 5
    with pytest.raises(ledger.SettingsChanged):
        run_local(RunConfig(run_dir=str(tmp_path), solve={"method": "cot"}), SHAPED_PROBE, {"default": llm})
