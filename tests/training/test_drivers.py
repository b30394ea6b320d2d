"""The training stages' drivers are bound on the Ray side: each stage declaring `driver_on_ray` gets
one from `training.drivers.bind`, and an unbound one refuses to run with a line saying where it is bound."""
import pytest

from toolweave.config import RunConfig
from toolweave.stages.declaration import Runtime
from toolweave.stages.registry import STAGES, context
from training.drivers import DRIVERS, bind


def test_every_stage_whose_driver_runs_on_ray_is_bound_and_no_other():
    on_ray = {name for name, s in STAGES.items() if s.driver_on_ray}
    assert on_ray == set(DRIVERS)
    for name, stage in STAGES.items():
        bound = bind(stage)
        assert (bound.driver is DRIVERS[name]) if name in on_ray else (bound is stage)


def test_an_unbound_ray_driver_says_where_it_is_bound():
    stage = next(s for s in STAGES.values() if s.driver_on_ray)
    runtime = Runtime()
    with pytest.raises(RuntimeError, match="training.drivers.bind"):
        stage.run(context(RunConfig(), stage), runtime)
