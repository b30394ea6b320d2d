"""The per-record Ray Data pipeline on a local Ray against a scripted OpenAI-compatible server."""
import json
import signal
import time

import pytest

from toolweave import io
from toolweave.schemas import Episode
from toolweave.stages import ledger
from toolweave.testing.scripted_server import ScriptedServer

from toolweave.testing.probe_run import probe_config, write_g1_instructions

pytestmark = pytest.mark.integration


def test_pipeline_runs_every_instruction_concurrently_and_records_failures(tmp_path, local_ray, monkeypatch):
    import toolweave.stages.lifecycle as lifecycle
    from ray_jobs.pipeline import run_records
    from toolweave.stages import probe
    instrs = write_g1_instructions(tmp_path, calls=2)  # one part file: one Parquet block
    seen: list[int] = []  # records done each time outcome rows reach the driver

    class RecordingView(lifecycle.ProgressView):
        def update(self):
            seen.append(self.p.done)
            super().update()

    monkeypatch.setattr(lifecycle, "ProgressView", RecordingView)
    doomed = instrs[5].text

    def handler(body):  # one instruction's calls fail for good (500 after the client's retries)
        return "ok"

    faults = lambda i, body: 500 if body["messages"][0]["content"] == doomed else None  # noqa: E731
    with ScriptedServer(handler=handler, latency_s=0.2, faults=faults) as srv:
        cfg = probe_config(tmp_path, srv.base_url, batch_size=8, max_in_flight=256, max_actors=2)
        summary = run_records(cfg, probe.STAGE)
        peak = srv.max_in_flight
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad and len(eps) == len(instrs) == 163
    assert sorted(e.instruction_id for e in eps) == sorted(i.id for i in instrs)
    failed = [e for e in eps if e.status == "error"]
    assert [e.instruction_id for e in failed] == [instrs[5].id] and failed[0].errors
    assert summary["processed"] == 163 and summary["failed"] == 1
    assert summary["llm_calls"] >= 2 * 162 and summary["prompt_tokens"] > 0
    assert json.loads((tmp_path / "probe_summary.json").read_text())["processed"] == 163
    assert peak > 16, f"episodes did not overlap (at most {peak} requests in flight)"
    # outcomes stream back batch by batch, not as one block when the whole input is done
    assert len(seen) >= 163 // 8 and seen[0] <= 8 and seen[-1] == 163, seen


def test_sigkilled_driver_then_rerun_writes_every_record_exactly_once(tmp_path):
    from tests.ray_jobs.probe_driver import kill_midway, rerun
    instrs = write_g1_instructions(tmp_path, calls=3)
    with ScriptedServer(handler=lambda body: "ok", latency_s=0.3) as srv:
        cfg = probe_config(tmp_path, srv.base_url, batch_size=4, max_in_flight=16, max_actors=1)
        done_before = kill_midway(cfg, min_done=20)
        assert 20 <= len(done_before) < len(instrs)
        summary = rerun(cfg)
    # the killed driver's actors may commit a few more batches before the rerun fences them off
    assert summary["skipped_already_done"] >= len(done_before)
    assert summary["skipped_already_done"] + summary["processed"] == len(instrs)
    ids = [r["id"] for r in io.iter_rows(tmp_path / "episodes", columns=["id"])]
    assert len(ids) == len(set(ids)), "a record was written twice"
    assert {r["instruction_id"] for r in io.iter_rows(tmp_path / "episodes", columns=["instruction_id"])} == \
        {i.id for i in instrs}, "a record was lost"


def test_sigkilled_actor_is_replaced_and_its_batches_retried_exactly_once(tmp_path, local_ray):
    import threading

    import psutil

    from ray_jobs.pipeline import run_records
    from toolweave.stages import probe
    instrs = write_g1_instructions(tmp_path, calls=3)
    led = tmp_path / "_ledger" / "probe"
    killed: list[int] = []

    def kill_the_actor_midway():
        deadline = time.monotonic() + 180
        while len(ledger.done_inputs(led)) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in psutil.Process().children(recursive=True):
            try:
                if "MapWorker" in " ".join(p.cmdline()):
                    p.send_signal(signal.SIGKILL)
                    killed.append(p.pid)
            except psutil.Error:
                pass

    with ScriptedServer(handler=lambda body: "ok", latency_s=0.3) as srv:
        cfg = probe_config(tmp_path, srv.base_url, batch_size=4, max_in_flight=16, max_actors=1)
        killer = threading.Thread(target=kill_the_actor_midway, daemon=True)
        killer.start()
        summary = run_records(cfg, probe.STAGE)
        killer.join()
    assert killed, "no actor was running midway"
    # the batches the dead actor held were retried on its replacement: each record once
    assert summary["processed"] == len(instrs) and summary["failed"] == 0
    ids = [r["id"] for r in io.iter_rows(tmp_path / "episodes", columns=["id"])]
    assert len(ids) == len(set(ids)) == len(instrs), "a record was written twice or lost"
    assert ledger.done_inputs(led) == {i.id for i in instrs}


def test_a_record_that_kills_its_actor_every_time_is_found_and_rejected_and_the_stage_finishes(tmp_path, local_ray):
    from ray_jobs.pipeline import run_records
    from toolweave.testing.probe_run import POISON, POISON_PROBE
    instrs = write_g1_instructions(tmp_path, calls=1, limit=8)
    poison = instrs[5]
    io.write_part([i.model_copy(update={"extra": {**i.extra, POISON: i.id == poison.id}}) for i in instrs],
                  tmp_path / "instructions", type(poison), name="input")
    with ScriptedServer(handler=lambda body: "ok") as srv:
        cfg = probe_config(tmp_path, srv.base_url, batch_size=4, max_in_flight=8, max_actors=1, max_task_retries=1)
        summary = run_records(cfg, POISON_PROBE)
    assert summary["processed"] == 8 and summary["failed"] == 1
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad and len(eps) == len({e.id for e in eps}) == 8
    (failed,) = [e for e in eps if e.status == "error"]
    assert failed.instruction_id == poison.id
    assert f"record {poison.id!r} killed its worker process every time it ran" in failed.errors[0]
    assert ledger.done_inputs(tmp_path / "_ledger" / "probe") == {i.id for i in instrs}
    assert not ledger.in_flight(tmp_path / "_ledger" / "probe")
