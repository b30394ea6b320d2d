"""A run dir in an S3-compatible object store (moto's server on 127.0.0.1): the probe stage on the
Ray pipeline, its driver SIGKILLed midway and rerun, writes every record exactly once; the ledger's
owner token, in-flight markers, orphans, commits and the summary all live in the bucket."""
import json
from pathlib import Path

import pytest

from toolweave import io
from toolweave.stages import ledger
from toolweave.testing.probe_run import probe_config, write_g1_instructions
from toolweave.testing.scripted_server import ScriptedServer

from tests.ray_jobs.probe_driver import kill_midway, rerun

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


def test_a_run_dir_on_s3_resumes_after_a_kill_exactly_once(tmp_path):
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root, ScriptedServer(handler=lambda body: "ok", latency_s=0.3) as srv:
        run_dir = f"{root}/runs/{tmp_path.name}"
        instrs = write_g1_instructions(run_dir, calls=2, limit=64)
        cfg = probe_config(run_dir, srv.base_url, batch_size=4, max_in_flight=16, max_actors=1)
        led = io.join(run_dir, "_ledger", "probe")
        done_before = kill_midway(cfg, min_done=12, timeout_s=240)  # AWS_* from moto_s3 reach the driver
        assert 12 <= len(done_before) < len(instrs)
        assert io.read_text(io.join(led, ledger.OWNER_FILE))  # the killed run never released the stage
        summary = rerun(cfg, timeout_s=400)
        assert summary["skipped_already_done"] >= len(done_before)
        assert summary["skipped_already_done"] + summary["processed"] == len(instrs)
        episodes = io.join(run_dir, "episodes")
        ids = [r["id"] for r in io.iter_rows(episodes, columns=["id"])]
        assert len(ids) == len(set(ids)), "a record was written twice"
        assert {r["instruction_id"] for r in io.iter_rows(episodes, columns=["instruction_id"])} == \
            {i.id for i in instrs}, "a record was lost"
        # every output part is committed (orphans swept), the clean end released the stage
        parts = {Path(str(p)).name for p in io.part_files(episodes)}
        assert parts == {f"part-{k}.parquet" for k in ledger.committed_keys(led)}
        assert not io.exists(io.join(led, ledger.OWNER_FILE)) and not ledger.in_flight(led)
        assert json.loads(io.read_text(io.join(run_dir, "probe_summary.json")))["processed"] == summary["processed"]
        assert not (ROOT / "s3:").exists()  # nothing went to a local "s3:" directory
