"""RolloutObs must give back exactly the observations that were added, whether it stores one frame per step
(an env that stacks frames) or whole observations (any other env, detected at the step where it shows)."""
import numpy as np
import pytest

from rollout import RolloutObs

H, W, K = 5, 6, 4


class Stacker:
    """The stacking rule of env.FrameStack: shift by one frame; after a reset the first frame fills all slots."""

    def __init__(self):
        self.stack = None

    def reset(self, frame):
        self.stack = np.repeat(frame[..., None], K, axis=-1)
        return self.stack.copy()

    def step(self, frame):
        self.stack = np.concatenate([self.stack[..., 1:], frame[..., None]], axis=-1)
        return self.stack.copy()


def stacked_rollout(rng, nsteps, nenvs, start_prob, break_at=None):
    """-> (store, reference [nsteps, nenvs, H, W, K]); after `break_at` steps observations stop stacking."""
    stackers = [Stacker() for _ in range(nenvs)]
    frame = lambda: rng.integers(0, 256, (H, W), dtype=np.uint8)  # noqa: E731
    obs = np.stack([s.reset(frame()) for s in stackers])
    for _ in range(5):   # so that the rollout's first stacks hold different frames
        obs = np.stack([s.step(frame()) for s in stackers])
    store = RolloutObs(nsteps, nenvs, obs.shape[1:])
    reference = np.zeros((nsteps, nenvs, H, W, K), np.uint8)
    starts = np.zeros(nenvs, bool)
    for step in range(nsteps):
        if break_at is not None and step >= break_at:
            obs = rng.integers(0, 256, obs.shape, dtype=np.uint8)
        store.add(step, obs, starts)
        reference[step] = obs
        starts = rng.random(nenvs) < start_prob
        obs = np.stack([s.reset(frame()) if start else s.step(frame()) for s, start in zip(stackers, starts)])
    return store, reference


def env_major(reference):
    return reference.swapaxes(0, 1).reshape(-1, H, W, K)


@pytest.mark.parametrize("start_prob", [0.0, 0.15, 0.6])
def test_compact_storage_rebuilds_every_observation(start_prob):
    rng = np.random.default_rng(7)
    store, reference = stacked_rollout(rng, nsteps=40, nenvs=3, start_prob=start_prob)
    assert store.full is None, "a stacking env must be stored one frame per step"
    order = rng.permutation(len(store))
    np.testing.assert_array_equal(store[order], env_major(reference)[order])
    np.testing.assert_array_equal(np.asarray(store), env_major(reference))


def test_compact_storage_holds_a_quarter_of_the_bytes():
    store, _ = stacked_rollout(np.random.default_rng(0), nsteps=64, nenvs=2, start_prob=0.1)
    stored = store.frames.nbytes + store.first.nbytes
    assert stored < 0.3 * 64 * 2 * H * W * K


def test_observations_that_stop_stacking_switch_to_whole_storage_exactly():
    rng = np.random.default_rng(3)
    store, reference = stacked_rollout(rng, nsteps=30, nenvs=3, start_prob=0.2, break_at=17)
    assert store.full is not None
    np.testing.assert_array_equal(np.asarray(store), env_major(reference))


def test_shape_and_length_are_those_of_the_flat_batch():
    store, _ = stacked_rollout(np.random.default_rng(1), nsteps=8, nenvs=3, start_prob=0.0)
    assert len(store) == 24 and store.shape == (24, H, W, K)
    assert store[np.array([0, 23])].shape == (2, H, W, K)


def test_a_first_observation_that_starts_an_episode_is_kept_whole_even_when_not_one_repeated_frame():
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 256, (6, 2, H, W, K), dtype=np.uint8)
    for step in range(1, 6):                       # from step 1 on, observations follow the stacking rule
        reference[step, ..., :-1] = reference[step - 1, ..., 1:]
    store = RolloutObs(6, 2, (H, W, K))
    for step in range(6):
        store.add(step, reference[step], np.full(2, step == 0))
    assert store.full is None
    np.testing.assert_array_equal(np.asarray(store), env_major(reference))
