"""vec_env.py: DummyVecEnv and SubprocVecEnv on fake envs (same-step reset, final observation, truncation flag,
episode stats, seeding), no process left behind, and one real SubprocVecEnv on the default game."""
import functools
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import sys

import cv2
import numpy as np
import psutil
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_envs  # noqa: E402
from fake_envs import ImageBandit, fake_frame  # noqa: E402

import env  # noqa: E402
from vec_env import DummyVecEnv, SubprocVecEnv, WorkerError, step_with_autoreset  # noqa: E402

VEC_CLASSES = [DummyVecEnv, SubprocVecEnv]


def g(frame_number):
    """The preprocessed (gray, 96x96) fake frame number `frame_number`."""
    gray = cv2.cvtColor(fake_frame(frame_number), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA)


def stack(*frame_numbers):
    return np.stack([g(n) for n in frame_numbers], axis=2)


def descendants():
    """Live (non-zombie) processes below this one."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def multiprocessing_helpers():
    """The forkserver and resource tracker processes, which live as long as this process by design."""
    return {multiprocessing.forkserver._forkserver._forkserver_pid,
            getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)} - {None}


def mixed_fns():
    """env 0 terminates after 3 agent steps (12 frames); env 1 is cut by a 2-step time limit."""
    return [functools.partial(fake_envs.make_wrapped_fake, rewards=(1.0,), episode_frames=12),
            functools.partial(fake_envs.make_wrapped_fake, rewards=(1.0,), max_episode_steps=2)]


@pytest.mark.parametrize("vec_class", VEC_CLASSES)
def test_reset_gives_uint8_batch(vec_class):
    with vec_class(fake_envs.wrapped_fake_fns(3), seed=0) as venv:
        assert venv.num_envs == 3
        assert venv.observation_space.shape == (96, 96, 4) and venv.action_space.n == 7
        obs = venv.reset()
        assert obs.shape == (3, 96, 96, 4) and obs.dtype == np.uint8
        for i in range(3):
            np.testing.assert_array_equal(obs[i], stack(0, 0, 0, 0))


@pytest.mark.parametrize("vec_class", VEC_CLASSES)
def test_an_ended_episode_is_reset_in_the_same_step(vec_class):
    with vec_class(mixed_fns(), seed=0) as venv:
        venv.reset()
        seen = []
        for step in range(1, 7):
            obs, rewards, dones, infos = venv.step(np.array([1, 1]))
            assert obs.shape == (2, 96, 96, 4) and obs.dtype == np.uint8
            assert rewards.shape == (2,) and rewards.dtype == np.float32
            assert dones.shape == (2,) and dones.dtype == bool
            # 4 frames of raw reward 1, scaled by 0.01; every step is new progress
            np.testing.assert_allclose(rewards, [0.04, 0.04], rtol=1e-6)
            seen.append(dones.tolist())
            # env 0: terminated after 3 steps (frames 4, 8, 12), reset at once
            if step % 3 == 0:
                np.testing.assert_array_equal(obs[0], stack(0, 0, 0, 0))        # the new episode's first
                np.testing.assert_array_equal(infos[0]["final_observation"], stack(0, 4, 8, 12))
                assert infos[0]["truncated"] is False
                assert infos[0]["episode"] == {"r": 12.0, "l": 3, "truncated": False}
            else:
                np.testing.assert_array_equal(obs[0], stack(*[0] * (4 - step % 3), *[4 * k for k in range(1, step % 3 + 1)]))
                assert "final_observation" not in infos[0] and "episode" not in infos[0]
            # env 1: cut by its time limit after 2 steps
            if step % 2 == 0:
                np.testing.assert_array_equal(obs[1], stack(0, 0, 0, 0))
                np.testing.assert_array_equal(infos[1]["final_observation"], stack(0, 0, 4, 8))
                assert infos[1]["truncated"] is True
                assert infos[1]["episode"] == {"r": 8.0, "l": 2, "truncated": True}
            else:
                np.testing.assert_array_equal(obs[1], stack(0, 0, 0, 4))
                assert "final_observation" not in infos[1]
        assert seen == [[False, False], [False, True], [True, False], [False, True], [False, False], [True, True]]


def test_step_with_autoreset_on_a_plain_env():
    base = fake_envs.make_bandit(episode_length=2)
    first, _ = base.reset(seed=3)
    obs, reward, done, info = step_with_autoreset(base, 0)
    assert not done and "final_observation" not in info and isinstance(reward, float)
    last = obs
    obs, reward, done, info = step_with_autoreset(base, 0)
    assert done and info["truncated"] is False and info["episode"]["l"] == 2
    assert not np.array_equal(info["final_observation"], last)        # the ended episode's last obs
    assert base.unwrapped.t == 0                                       # ... and the env was reset


def _rollout(venv, nsteps, action_seed=0, resets=1):
    rng = np.random.default_rng(action_seed)
    out = [venv.reset() for _ in range(resets)]
    for _ in range(nsteps):
        obs, rewards, dones, infos = venv.step(rng.integers(0, 7, size=venv.num_envs))
        out.append((obs, rewards, dones,
                    [(info.get("episode"), info.get("truncated"), info.get("final_observation")) for info in infos]))
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
            continue
        for u, v in zip(x[:3], y[:3]):
            np.testing.assert_array_equal(u, v)
        for (ep_u, tr_u, fo_u), (ep_v, tr_v, fo_v) in zip(x[3], y[3]):
            assert ep_u == ep_v and tr_u == tr_v
            assert (fo_u is None) == (fo_v is None)
            if fo_u is not None:
                np.testing.assert_array_equal(fo_u, fo_v)


@pytest.mark.parametrize("make_fns", [lambda: fake_envs.bandit_fns(3, episode_length=5),
                                      lambda: fake_envs.wrapped_fake_fns(2, rewards=(3, -1, 2, -5), episode_frames=30)],
                         ids=["bandit", "wrapped-fake"])
def test_dummy_and_subproc_give_identical_results_for_the_same_seed(make_fns):
    with DummyVecEnv(make_fns(), seed=42) as dummy:
        expected = _rollout(dummy, 25)
    with SubprocVecEnv(make_fns(), seed=42) as subproc:
        got = _rollout(subproc, 25)
    _assert_same(expected, got)
    assert any(d.any() for _, _, d, _ in expected[1:])            # episodes did end on the way


def test_env_i_is_seeded_with_seed_plus_i():
    with DummyVecEnv(fake_envs.bandit_fns(3), seed=10) as venv:
        obs = venv.reset()
    for i in range(3):
        bandit = ImageBandit()
        np.testing.assert_array_equal(obs[i], bandit.reset(seed=10 + i)[0])
    with DummyVecEnv(fake_envs.bandit_fns(3), seed=11) as other:
        assert not np.array_equal(other.reset()[0], obs[0])


def test_a_second_reset_continues_the_seeded_stream_in_both_classes():
    """Only the first reset is seeded (as vec_env documents): both classes agree on what a later reset gives."""
    with DummyVecEnv(fake_envs.bandit_fns(2), seed=5) as dummy:
        expected = _rollout(dummy, 3, resets=2)
    with SubprocVecEnv(fake_envs.bandit_fns(2), seed=5) as subproc:
        got = _rollout(subproc, 3, resets=2)
    _assert_same(expected, got)
    assert not np.array_equal(expected[0], expected[1])           # the second reset is a new episode


def test_subproc_accepts_a_lambda_repeated():
    """SubprocVecEnv([lambda: ...] * 2), as code written for the 2018 scripts builds it: the standard pickle
    refuses a lambda ("Can't pickle local object"); it must reach the workers and build one env each."""
    fns = [lambda: fake_envs.make_wrapped_fake(episode_frames=12)] * 2
    with DummyVecEnv(fns, seed=1) as dummy:
        expected = _rollout(dummy, 4)
    with SubprocVecEnv(fns, seed=1) as subproc:
        got = _rollout(subproc, 4)
    _assert_same(expected, got)
    assert [dones.tolist() for _, _, dones, _ in got[1:]] == [[False] * 2, [False] * 2, [True] * 2, [False] * 2]


def test_subproc_accepts_a_closure_over_a_local_variable():
    """The local variable travels with the closure: each worker's bandit ends its episodes after `length` steps."""
    def bandit_fns(length, count):
        def make():
            return fake_envs.make_bandit(episode_length=length)
        return [make] * count

    fns = bandit_fns(length=2, count=2)
    with DummyVecEnv(fns, seed=7) as dummy:
        expected = _rollout(dummy, 4)
    with SubprocVecEnv(fns, seed=7) as subproc:
        got = _rollout(subproc, 4)
    _assert_same(expected, got)
    assert [dones.tolist() for _, _, dones, _ in got[1:]] == [[False] * 2, [True] * 2] * 2


def test_factory_modules_are_preloaded_for_lambdas_and_partials():
    """The fork server imports the modules that define the factories; a lambda's is the module it was written in."""
    from vec_env import factory_modules
    fns = [lambda: None, functools.partial(fake_envs.make_bandit, 3), env.make_train_0]
    assert factory_modules(fns) == sorted({"__main__", __name__, "fake_envs", "env"})


def test_subproc_close_leaves_no_child_process():
    before = descendants()
    venv = SubprocVecEnv(fake_envs.wrapped_fake_fns(3), seed=0)
    workers = [proc.pid for proc in venv.procs]
    assert set(workers) <= descendants()
    venv.reset()
    venv.step(np.zeros(3, dtype=np.int64))
    venv.close()
    venv.close()                                   # a second close is harmless
    for pid in workers:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert descendants() - before - multiprocessing_helpers() == set()


def test_a_worker_that_cannot_build_its_env_is_named_and_nothing_is_left():
    before = descendants()
    fns = fake_envs.wrapped_fake_fns(1) + [fake_envs.make_failing]
    with pytest.raises(WorkerError) as error:
        SubprocVecEnv(fns, names=["fake/one", "fake/broken"], timeout=30)
    assert error.value.env_idx == 1 and "fake/broken" in str(error.value)
    assert "cannot be built" in str(error.value)
    assert descendants() - before - multiprocessing_helpers() == set()


@pytest.mark.slow
def test_real_subproc_vec_env_on_airstriker():
    before = descendants()
    game = env.DEFAULT_GAME
    with SubprocVecEnv(env.env_fns(2, game), seed=0, names=env.env_names(2, game)) as venv:
        assert venv.names == [f"{game}/Level1"] * 2
        obs = venv.reset()
        assert obs.shape == (2, 96, 96, 4) and obs.dtype == np.uint8
        assert obs.std() > 0
        np.testing.assert_array_equal(obs[..., 0], obs[..., 3])      # a reset fills the stack with one frame
        for step in range(20):
            obs, rewards, dones, infos = venv.step(np.array([step % 7, (step + 3) % 7]))
            assert obs.shape == (2, 96, 96, 4) and obs.dtype == np.uint8
            assert rewards.shape == (2,) and np.all(rewards >= 0) and dones.shape == (2,)
            assert len(infos) == 2
        assert not np.array_equal(obs[..., 0], obs[..., 3])          # the stack moved on
    assert descendants() - before - multiprocessing_helpers() == set()


@pytest.mark.slow
def test_real_subproc_vec_env_from_a_lambda():
    """The issue's own line, on the default game: SubprocVecEnv([lambda: make_env(0)] * 2)."""
    game = env.DEFAULT_GAME
    with SubprocVecEnv([lambda: env.make_env(0, game)] * 2, seed=0) as venv:
        obs = venv.reset()
        assert obs.shape == (2, 96, 96, 4) and obs.std() > 0
        obs, rewards, dones, infos = venv.step(np.array([1, 6]))
        assert obs.shape == (2, 96, 96, 4) and rewards.shape == (2,) and len(infos) == 2


def test_fake_envs_import_without_tensorflow():
    """Env workers import the factories' module in fresh processes: it must not drag TensorFlow in."""
    import subprocess
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import fake_envs; "
            "fake_envs.make_wrapped_fake(); fake_envs.make_bandit(); fake_envs.make_endless(); "
            "fake_envs.make_counting(); print('tensorflow' in sys.modules)")
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", code, here, os.path.dirname(here)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
