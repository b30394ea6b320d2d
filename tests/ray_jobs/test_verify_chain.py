"""verify -> sft_data -> export as `toolweave run` chains them, on a local Ray: the verify stage's
episodes go through Ray Data workers, its semantic judge is a scripted OpenAI-compatible server,
and sft_data trains on nothing verify left out. No engine is started (the judge has an endpoint)."""
import json
from pathlib import Path

import pytest

from toolweave.io import read_records
from toolweave.schemas import Reject, SFTExample, VerifiedEpisode
from toolweave.testing.fake_llm import tool_call

pytestmark = pytest.mark.integration
ANSWERS = Path(__file__).parents[2] / "tests/data/toolbench/data_example/answer"


def test_verify_sft_data_export_chain_on_ray(tmp_path, scripted_server):
    from ray_jobs.cli import run_stages
    from toolweave.config import RunConfig
    from toolweave.stages.registry import chain, check_config
    solved = {"tool_calls": [tool_call("check_answer_status", {"reason": "fine", "answer_status": "Solved"})]}
    judge = scripted_server(handler=lambda body: solved)
    cfg = check_config(RunConfig(
        run_dir=str(tmp_path), stages=["verify", "sft_data", "export"], run={"show_progress": False, "limit": 1},
        ray={"num_cpus": 4, "object_store_memory": 200_000_000, "min_actors": 1, "max_actors": 1},
        llm={"engine": "endpoints", "endpoints": {"default": {"base_url": judge.base_url, "model": "judge-m"}}},
        verify={"votes": 1, "import_answers": [str(ANSWERS)]}, sft={"max_len": 16384, "truncate": True}))
    results = run_stages(cfg, chain(cfg.stages))

    assert results["verify"]["runner"] != "local" and results["verify"]["processed"] == 15  # run.limit: not here
    checked = {v.id: v for v in read_records(cfg.path("verified_episodes"), VerifiedEpisode)[0]}
    good = {i for i, v in checked.items() if v.verified}
    assert len(checked) == 15 and len(good) == 6 and results["verify"]["llm_calls"] == 6  # judged: format+execution ok
    trained = {e for r in read_records(cfg.path("sft"), SFTExample)[0] for e in r.episode_ids}
    assert trained == good
    rejected = {r.id: r.reason for r in read_records(cfg.path("sft_rejects"), Reject)[0]}
    assert set(rejected) == set(checked) - good and all(" check failed: " in r for r in rejected.values())
    assert results["export"]["outputs"] == 6
    assert len((cfg.path("export", "sharegpt.jsonl")).read_text().splitlines()) == 6
    assert json.loads(cfg.path("dataset", "statistics.json").read_text())["verified"] == 6
