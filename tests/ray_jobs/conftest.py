import os

import pytest

from toolweave.config import RunConfig

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def local_ray():
    from ray_jobs.runtime import ray_session
    with ray_session(RunConfig(ray={"num_cpus": 8, "object_store_memory": 200_000_000})):
        yield
