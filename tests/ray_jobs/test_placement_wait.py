"""A per-record stage whose actors no node can hold stops after `ray.placement_timeout_s` with one
line naming the ask and what the cluster has (Ray Data alone would wait forever)."""
import time

import pytest

from ray_jobs.pipeline import PlacementTimeout, run_records
from toolweave.stages import ledger, probe
from toolweave.testing.probe_run import probe_config, write_g1_instructions

pytestmark = pytest.mark.integration


def test_actors_no_node_can_hold_stop_the_stage_in_seconds_naming_the_ask(tmp_path, local_ray):
    write_g1_instructions(tmp_path, calls=1, limit=4)
    # the fixture's local instance has 8 CPUs and no custom resource
    cfg = probe_config(tmp_path, "http://127.0.0.1:9/v1", actor_resources={"simulate": 0.01},
                       placement_timeout_s=3)
    t0 = time.monotonic()
    with pytest.raises(PlacementTimeout) as e:
        run_records(cfg, probe.STAGE)
    assert time.monotonic() - t0 < 20
    line = str(e.value)
    assert "\n" not in line and line.startswith("probe: no episode actor placed after 3s")
    assert "{CPU 0.25, simulate 0.01}" in line and "the cluster has 1 node {CPU 8}" in line, line
    # nothing ran, and the stage is given up: a rerun claims it without the fence's grace wait
    assert not list((tmp_path / "episodes").glob("*.parquet"))
    assert not (tmp_path / "_ledger" / "probe" / ledger.OWNER_FILE).exists()
