"""An update's batch is the one that the sampling path of commit 7ff1b16 produced (tests/data/batch_*.npz,
recorded by tests/batch_fixture.py before issue 20's changes): local backend and Ray, fake envs and the
default game."""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:   # the env processes and Ray workers unpickle faulty_envs' factories
    sys.path.insert(0, HERE)

import batch_fixture  # noqa: E402


@pytest.mark.parametrize("kind", batch_fixture.KINDS)
def test_local_batch_is_the_recorded_one(kind):
    with np.load(batch_fixture.fixture_path(kind)) as recorded:
        batch_fixture.assert_same(recorded, batch_fixture.local_batch(kind))


def test_ray_batch_is_the_recorded_one():
    ray = pytest.importorskip("ray")
    import ray_backend
    assert not ray.is_initialized()
    ray_backend.connect("", num_cpus=2, code_paths=[HERE])
    try:
        for kind in batch_fixture.KINDS:
            with np.load(batch_fixture.fixture_path(kind)) as recorded:
                batch_fixture.assert_same(recorded, batch_fixture.ray_batch(kind))
    finally:
        ray.shutdown()
