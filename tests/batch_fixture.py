"""One update's batch from a small deterministic run, as arrays: what tests/data/batch_*.npz record.

`python tests/batch_fixture.py` rewrites the fixtures (only do so on purpose: they pin today's numbers, and
test_same_batch.py checks every later change of the sampling path against them).

kind 'fake': 2 fake image envs (faulty_envs, episodes of 7 steps) x 16 steps; 'real': 2 envs of the default
game (Airstriker, the whole wrapper chain) x 16 steps. Both: seed 5, the Model of the 2018 signature, its
own graph with tf.set_random_seed, the local Runner on a SubprocVecEnv, the second update's batch (the
learner's GAE, gamma 0.99, lambda 0.95).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

NSTEPS, SEED, EPISODE, NUM_ENVS = 16, 5, 7, 2
KINDS = ("fake", "real")


def fixture_path(kind: str) -> str:
    return os.path.join(HERE, "data", f"batch_{kind}.npz")


def env_fns(kind: str) -> list:
    if kind == "fake":
        import faulty_envs
        return faulty_envs.env_fns(NUM_ENVS, EPISODE)
    import env as game_env
    return game_env.env_fns(NUM_ENVS, "Airstriker-Genesis-v0")


def batch_arrays(batch, rollout) -> dict:
    """The arrays of one update: obs [n, 96, 96, 4] uint8, actions/returns/values/neglogpacs [n] (env-major,
    as finish returns them), rewards/dones [nsteps, nenvs] (the rollout's own, step-major)."""
    obs, actions, returns, values, neglogpacs, _episodes = batch
    return {"obs": np.asarray(obs[np.arange(len(obs))]), "actions": actions, "returns": returns, "values": values,
            "neglogpacs": neglogpacs, "rewards": rollout.rewards, "dones": rollout.dones,
            "last_dones": rollout.last_dones}


def new_model(num_envs: int, venv_like, nsteps: int = NSTEPS, seed: int = SEED):
    """A fresh graph, session and Model (the 2018 signature) for `num_envs` envs of `venv_like`'s spaces,
    seeded. -> (graph, sess, model)"""
    import tensorflow.compat.v1 as tf

    from architecture import A2CPolicy
    from model import Model
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        sess = tf.Session(graph=graph)
        with sess.as_default():
            model = Model(A2CPolicy, venv_like.observation_space, venv_like.action_space, num_envs, nsteps, 0.01,
                          0.5, 0.5)
    return graph, sess, model


def second_batch(make_sampler, venv_like, num_envs: int = NUM_ENVS) -> dict:
    """The arrays of the second update of a sampler made by make_sampler(model, rngs, settings) (the first
    update runs too, so episodes that end and restart are in the recorded one)."""
    import model as a2c
    from rollout import Collection
    graph, sess, model = new_model(num_envs, venv_like)
    try:
        with graph.as_default(), sess.as_default():
            sampler = make_sampler(model, a2c.action_rngs(SEED, range(num_envs)), Collection(NSTEPS, 0.99))
            sampler.sample()
            rollout = sampler.sample()
            return batch_arrays(a2c.finish(rollout, 0.99, 0.95), rollout)
    finally:
        sess.close()


def local_batch(kind: str) -> dict:
    import model as a2c
    from vec_env import SubprocVecEnv
    venv = SubprocVecEnv(env_fns(kind), seed=SEED)
    try:
        return second_batch(lambda model, rngs, settings: a2c.Runner(venv, model, settings, rngs), venv)
    finally:
        venv.close()


def ray_batch(kind: str, envs_per_worker: int = 1) -> dict:
    """The same through ray_backend.RaySampler (Ray must be connected)."""
    import ray_backend
    sampler = ray_backend.RaySampler(env_fns(kind), NUM_ENVS // envs_per_worker, envs_per_worker, seed=SEED)
    try:
        return second_batch(sampler.sampler, sampler)
    finally:
        sampler.close()


def assert_same(recorded, batch: dict) -> None:
    """Frames, actions, rewards, dones identical; values, returns and -log pi to float rounding."""
    for name in ("obs", "actions", "rewards", "dones", "last_dones"):
        np.testing.assert_array_equal(batch[name], recorded[name], err_msg=name)
    for name in ("values", "returns", "neglogpacs"):
        np.testing.assert_allclose(batch[name], recorded[name], rtol=1e-5, atol=1e-5, err_msg=name)


def main() -> None:
    os.makedirs(os.path.join(HERE, "data"), exist_ok=True)
    for kind in KINDS:
        np.savez_compressed(fixture_path(kind), **local_batch(kind))
        print(fixture_path(kind), os.path.getsize(fixture_path(kind)), "bytes")


if __name__ == "__main__":
    main()
