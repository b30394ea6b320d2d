"""The Ray runner's tool-response cache: one actor per stage run, ended with `stop_tool_cache` (not
killed), so every response is persisted to the run dir's `tool_cache/` parts when the stage ends."""
import pytest

from toolweave import io
from toolweave.stages.episodes import tool_cache_path
from toolweave.testing.probe_run import CACHING_PROBE, probe_config, write_g1_instructions
from toolweave.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration


def test_the_stage_end_persists_every_cached_response_to_the_run_dir(tmp_path, local_ray):
    from ray_jobs.pipeline import run_records
    instrs = write_g1_instructions(tmp_path, calls=1, limit=24)
    with ScriptedServer(handler=lambda body: "ok") as srv:
        cfg = probe_config(tmp_path, srv.base_url, batch_size=8, max_actors=2)
        cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"kind": "llm"})})
        summary = run_records(cfg, CACHING_PROBE)
    assert summary["processed"] == len(instrs)
    rows = list(io.iter_rows(tool_cache_path(cfg)))  # persisted well before the 60 s timer: by the stop
    assert sorted(r["key"] for r in rows) == sorted(f"probe:{i.id}" for i in instrs)
    assert not [p for p in tmp_path.rglob("*") if "sqlite" in p.name]  # SQLite never in the run dir
