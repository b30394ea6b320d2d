"""A driver that runs the probe stage on a local Ray (the kill-and-resume test SIGKILLs it)."""
import json
import sys

from ray_jobs.pipeline import run_records
from ray_jobs.runtime import ray_session
from toolweave.config import RunConfig
from toolweave.stages import probe

if __name__ == "__main__":
    cfg = RunConfig.model_validate_json(sys.argv[1])
    with ray_session(cfg):
        print("SUMMARY " + json.dumps(run_records(cfg, probe.STAGE)), flush=True)
