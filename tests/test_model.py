"""model.py: GAE against hand-worked numbers and an independent implementation, explained variance, Model.train's
losses against numpy, the learning rate fed per call, save/load (full, weights-only, wrong action count), the
Runner's batches, bootstrapping of time-limit cuts, and A2C really learning a task whose best action is known."""
import csv
import functools
import io
import os
import sys

import gymnasium as gym
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_envs  # noqa: E402
from fake_envs import ImageBandit  # noqa: E402

from architecture import A2CPolicy  # noqa: E402
from checkpoint import CheckpointError, resolve_checkpoint  # noqa: E402
from model import Model, Runner, action_rngs, collect, compute_gae, explained_variance, finish, flatten_env_major, learn  # noqa: E402
from rollout import Collection  # noqa: E402
from vec_env import DummyVecEnv, SubprocVecEnv  # noqa: E402

OB_SPACE = gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
ACTIONS = gym.spaces.Discrete(7)


@pytest.fixture
def graph():
    """A fresh graph and default session for one test; yields a function that makes more of them."""
    opened = []

    def new_graph(seed=0):
        g = tf.Graph()
        ctx = g.as_default()
        ctx.__enter__()
        sess = tf.Session(graph=g)
        sess_ctx = sess.as_default()
        sess_ctx.__enter__()
        tf.set_random_seed(seed)
        opened.append((ctx, sess, sess_ctx))
        return sess

    yield new_graph
    for ctx, sess, sess_ctx in reversed(opened):
        sess_ctx.__exit__(None, None, None)
        sess.close()
        ctx.__exit__(None, None, None)


def new_model(action_space=ACTIONS, nenvs=2, nsteps=2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, seed=0):
    return Model(A2CPolicy, OB_SPACE, action_space, nenvs, nsteps, ent_coef, vf_coef, max_grad_norm,
                 rng=np.random.default_rng(seed))


def all_values(sess):
    return {v.op.name: sess.run(v) for v in tf.global_variables()}


def random_obs(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 96, 96, 4), dtype=np.uint8)


# ----------------------------------------------------------------------------- GAE

def gae_reference(rewards, values, dones, last_values, last_dones, gamma, lam):
    """GAE from its definition: A_t = sum_k (gamma lam)^k delta_{t+k}, the sum stopping at an episode's end;
    delta_k = r_k + gamma V_{k+1} (0 when step k ended the episode) - V_k. Plain loops, float64."""
    nsteps, nenvs = np.shape(rewards)
    next_values = np.vstack([values[1:], np.reshape(last_values, (1, nenvs))]).astype(np.float64)
    ended = np.vstack([dones[1:], np.reshape(last_dones, (1, nenvs))]).astype(bool)  # step t ended an episode
    advantages = np.zeros((nsteps, nenvs))
    for env in range(nenvs):
        for t in range(nsteps):
            total, coef = 0.0, 1.0
            for k in range(t, nsteps):
                delta = rewards[k][env] + (0.0 if ended[k, env] else gamma * next_values[k, env]) - values[k][env]
                total += coef * delta
                if ended[k, env]:
                    break
                coef *= gamma * lam
            advantages[t, env] = total
    return advantages, advantages + np.asarray(values, np.float64)


# two envs, 4 steps, gamma = lam = 0.5. env 0: an episode ends after step 1 (obs 2 starts a new one), the last
# one goes on (bootstrap from last value 3). env 1: the episode ends after the last step (last_dones).
GAE_CASE = dict(
    rewards=np.array([[1, 1], [2, 0], [3, 0], [4, 2]], dtype=np.float32),
    values=np.array([[0.5, 1], [1, 1], [1.5, 1], [2, 1]], dtype=np.float32),
    dones=np.array([[False, True], [False, False], [True, False], [False, False]]),
    last_values=np.array([3, 4], dtype=np.float32),
    last_dones=np.array([False, True]),
    gamma=0.5, lam=0.5,
)
# worked out by hand (gamma * lam = 0.25):
# env 0: t3: delta = 4 + .5*3 - 2 = 3.5, A = 3.5;  t2: delta = 3 + .5*2 - 1.5 = 2.5, A = 2.5 + .25*3.5 = 3.375
#        t1: ends the episode: delta = 2 - 1 = 1, A = 1;  t0: delta = 1 + .5*1 - .5 = 1, A = 1 + .25*1 = 1.25
# env 1: t3: ends (last_dones): delta = 2 - 1 = 1, A = 1;  t2: delta = 0 + .5 - 1 = -.5, A = -.5 + .25 = -.25
#        t1: delta = -.5, A = -.5 + .25*(-.25) = -.5625;  t0: delta = 1 + .5 - 1 = .5, A = .5 - .25*.5625 = .359375
HAND_ADVANTAGES = np.array([[1.25, 0.359375], [1.0, -0.5625], [3.375, -0.25], [3.5, 1.0]])
HAND_RETURNS = np.array([[1.75, 1.359375], [2.0, 0.4375], [4.875, 0.75], [5.5, 2.0]])


def test_compute_gae_matches_hand_worked_numbers():
    advantages, returns = compute_gae(**GAE_CASE)
    assert advantages.dtype == np.float32 and returns.dtype == np.float32
    assert advantages.shape == returns.shape == (4, 2)
    np.testing.assert_array_equal(advantages, HAND_ADVANTAGES)     # exact: every number is a binary fraction
    np.testing.assert_array_equal(returns, HAND_RETURNS)
    np.testing.assert_allclose(gae_reference(**GAE_CASE)[0], HAND_ADVANTAGES, rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.7, 0.0), (1.0, 1.0)])
def test_compute_gae_matches_an_independent_implementation(gamma, lam):
    rng = np.random.default_rng(int(gamma * 100 + lam * 10))
    for nsteps, nenvs in [(1, 1), (5, 3), (32, 4)]:
        case = dict(rewards=rng.normal(size=(nsteps, nenvs)).astype(np.float32),
                    values=rng.normal(size=(nsteps, nenvs)).astype(np.float32),
                    dones=rng.random((nsteps, nenvs)) < 0.2,
                    last_values=rng.normal(size=nenvs).astype(np.float32),
                    last_dones=rng.random(nenvs) < 0.3, gamma=gamma, lam=lam)
        advantages, returns = compute_gae(**case)
        ref_adv, ref_ret = gae_reference(**case)
        np.testing.assert_allclose(advantages, ref_adv, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(returns, ref_ret, rtol=1e-4, atol=1e-4)


def test_gae_with_lambda_one_gives_discounted_returns_and_lambda_zero_one_step_targets():
    rewards = np.array([[1.0], [2.0], [4.0]], dtype=np.float32)
    values = np.array([[3.0], [5.0], [7.0]], dtype=np.float32)
    dones = np.zeros((3, 1), dtype=bool)
    _, returns = compute_gae(rewards, values, dones, np.array([8.0]), np.array([False]), 0.5, 1.0)
    # R_2 = 4 + .5*8 = 8, R_1 = 2 + .5*8 = 6, R_0 = 1 + .5*6 = 4
    np.testing.assert_array_equal(returns[:, 0], [4.0, 6.0, 8.0])
    _, returns = compute_gae(rewards, values, dones, np.array([8.0]), np.array([True]), 0.5, 0.0)
    # R_t = r_t + .5 V_{t+1}; the last step ends its episode: R_2 = 4
    np.testing.assert_array_equal(returns[:, 0], [1 + 2.5, 2 + 3.5, 4.0])


def test_explained_variance():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(np.full(4, 2.5), target) == pytest.approx(0.0)
    # var(target) = 1.25, var([0, 0, 0, -1]) = 0.1875: 1 - 0.15
    assert explained_variance(np.array([1.0, 2.0, 3.0, 5.0]), target) == pytest.approx(0.85)
    assert explained_variance(-target, target) == pytest.approx(1 - np.var(2 * target) / 1.25)   # -3: worse
    assert np.isnan(explained_variance(np.zeros(3), np.ones(3)))


def test_flatten_env_major_keeps_each_envs_steps_together():
    array = np.arange(3 * 2 * 5).reshape(3, 2, 5)     # [nsteps, nenvs, feature]
    flat = flatten_env_major(array)
    assert flat.shape == (6, 5)
    for env in range(2):
        for step in range(3):
            np.testing.assert_array_equal(flat[env * 3 + step], array[step, env])


# ----------------------------------------------------------------------------- Model.train

def np_neglogp(logits, actions):
    z = logits.astype(np.float64)
    m = z.max(axis=-1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=-1)) - z[np.arange(len(z)), actions]


def np_entropy(logits):
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return -(p * np.log(p)).sum(axis=-1)


def test_train_losses_match_numpy_on_the_weights_before_the_step(graph):
    sess = graph()
    m = new_model(ent_coef=0.01, vf_coef=0.5)
    for var in tf.trainable_variables():                  # a livelier policy head than the 0.01-gain init
        if var.op.name == "model/pi/w":
            var.load(sess.run(var) * 200, sess)
    obs = random_obs(4)
    actions = np.array([0, 3, 6, 2], dtype=np.int32)
    returns = np.array([1.5, -0.5, 2.0, 0.25], dtype=np.float32)
    values = np.array([0.5, 0.5, -1.0, 1.0], dtype=np.float32)     # the values the runner saw (not V now)
    logits, vf = sess.run([m.train_model.pi, m.train_model.vf], {m.train_model.inputs_: obs})
    assert np.ptp(logits) > 0.1
    expected_pg = np.mean((returns - values) * np_neglogp(logits, actions))
    expected_vf = np.mean((returns - vf.astype(np.float64)) ** 2) / 2
    expected_ent = np.mean(np_entropy(logits))
    feed = {m.train_model.inputs_: obs, m.actions_: actions, m.advantages_: returns - values,
            m.rewards_: returns}
    total = sess.run(m.loss, feed)
    assert total == pytest.approx(expected_pg - 0.01 * expected_ent + 0.5 * expected_vf, rel=1e-5, abs=1e-6)
    before = all_values(sess)
    policy_loss, value_loss, entropy = m.train(obs, actions, returns, values, 1e-3)
    assert policy_loss == pytest.approx(expected_pg, rel=1e-5, abs=1e-6)
    assert value_loss == pytest.approx(expected_vf, rel=1e-5, abs=1e-6)
    assert entropy == pytest.approx(expected_ent, rel=1e-5, abs=1e-6)
    after = all_values(sess)
    for name in before:                                  # every weight and every slot moved
        assert not np.array_equal(before[name], after[name]), name


def test_learning_rate_is_fed_per_call(graph):
    sess = graph()
    m = new_model()
    obs, actions = random_obs(4, seed=1), np.array([1, 2, 3, 4], dtype=np.int32)
    returns, values = np.array([1.0, 2.0, 0.0, -1.0], np.float32), np.zeros(4, np.float32)
    start = all_values(sess)
    params = [v.op.name for v in m.params]

    def restore():
        for var in tf.global_variables():
            var.load(start[var.op.name], sess)

    m.train(obs, actions, returns, values, 0.0)
    after_zero = all_values(sess)
    for name in params:
        np.testing.assert_array_equal(after_zero[name], start[name], err_msg=name)   # lr 0: no weight moves
    restore()
    m.train(obs, actions, returns, values, 1e-3)
    small = all_values(sess)
    restore()
    m.train(obs, actions, returns, values, 5e-3)
    large = all_values(sess)
    for name in params:
        w0 = start[name].astype(np.float64)
        step_small, step_large = small[name] - w0, large[name] - w0
        assert np.abs(step_small).max() > 0, name
        # RMSProp's step is proportional to the learning rate of the call (its slots do not depend on it),
        # up to float32 rounding of the updated weights (a few units in the last place)
        ulp = np.spacing(np.maximum(np.abs(start[name]), np.abs(large[name])).astype(np.float32)).astype(np.float64)
        assert np.all(np.abs(step_large - 5 * step_small) <= 8 * ulp + 1e-4 * np.abs(step_large)), name
        assert np.median(np.abs(step_large)[step_large != 0] / ulp[step_large != 0]) > 50, name


# ----------------------------------------------------------------------------- save and load

def test_save_then_load_into_a_new_graph_restores_outputs_and_optimizer_slots(graph, tmp_path):
    obs = random_obs(3, seed=4)
    sess = graph(seed=0)
    m = new_model()
    m.train(random_obs(4), np.array([0, 1, 2, 3], np.int32), np.ones(4, np.float32), np.zeros(4, np.float32), 1e-3)
    path = str(tmp_path / "ckpt" / "model.ckpt")
    m.save(path)
    assert os.path.isfile(path + ".index")
    saved = all_values(sess)
    saved_out = sess.run([m.step_model.pi, m.step_model.vf], {m.step_model.inputs_: obs})

    sess2 = graph(seed=1)
    m2 = new_model()
    fresh_out = sess2.run([m2.step_model.pi, m2.step_model.vf], {m2.step_model.inputs_: obs})
    assert not np.allclose(fresh_out[1], saved_out[1])
    assert m2.load(path) is True
    loaded_out = sess2.run([m2.step_model.pi, m2.step_model.vf], {m2.step_model.inputs_: obs})
    np.testing.assert_array_equal(loaded_out[0], saved_out[0])
    np.testing.assert_array_equal(loaded_out[1], saved_out[1])
    loaded = all_values(sess2)
    assert set(loaded) == set(saved) and any(name.endswith("RMSProp") for name in saved)
    for name in saved:
        np.testing.assert_array_equal(loaded[name], saved[name], err_msg=name)


def test_loading_a_checkpoint_with_another_action_count_names_the_shape(graph, tmp_path):
    graph()
    path = str(tmp_path / "seven" / "model.ckpt")
    new_model().save(path)
    graph()
    five = new_model(action_space=gym.spaces.Discrete(5))
    with pytest.raises(CheckpointError) as error:
        five.load(path)
    message = str(error.value)
    assert "model/pi/w" in message and "[512, 7]" in message and "[512, 5]" in message


def test_a_missing_checkpoint_is_a_checkpoint_error(graph, tmp_path):
    graph()
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        new_model().load(str(tmp_path / "nothing" / "model.ckpt"))


def test_a_weights_only_checkpoint_loads_weights_and_keeps_fresh_slots(graph, tmp_path):
    sess = graph(seed=0)
    m = new_model()
    m.train(random_obs(4), np.array([0, 1, 2, 3], np.int32), np.ones(4, np.float32), np.zeros(4, np.float32), 1e-3)
    path = str(tmp_path / "weights" / "model.ckpt")
    os.makedirs(os.path.dirname(path))
    tf.train.Saver(var_list=m.params).save(sess, path, write_meta_graph=False)   # as some 2018 runs saved
    weights = {v.op.name: sess.run(v) for v in m.params}
    stored = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    assert set(stored) == set(weights)                                         # no slot in it

    sess2 = graph(seed=1)
    m2 = new_model()
    slots_before = {k: v for k, v in all_values(sess2).items() if "RMSProp" in k}
    assert m2.load(path) is False
    for var in m2.params:
        np.testing.assert_array_equal(sess2.run(var), weights[var.op.name], err_msg=var.op.name)
    for name, value in all_values(sess2).items():
        if "RMSProp" in name:
            np.testing.assert_array_equal(value, slots_before[name], err_msg=name)


# ----------------------------------------------------------------------------- Runner

class StubModel:
    """A model whose outputs are read off the observation: action = newest frame value % 7, value = it / 10."""

    def __init__(self):
        self.value_calls = []

    @staticmethod
    def _newest(obs):
        return np.asarray(obs)[:, 0, 0, -1].astype(np.float32)

    def step(self, obs):
        newest = self._newest(obs)
        return (newest % 7).astype(np.int32), newest / 10

    def step_neglogp(self, obs, rngs=None):
        actions, values = self.step(obs)
        return actions, values, values + 1.0    # a stand-in read off the observation too

    def value(self, obs):
        self.value_calls.append(len(obs))
        return self._newest(obs) / 10


def expected_rollout(make, seed, nsteps, gamma, lam, bootstrap):
    """One env run by hand with the stub's policy: its [nsteps] obs, actions, values, rewards, dones and the
    GAE returns (reference implementation)."""
    one = make()
    obs, _ = one.reset(seed=seed)
    done = False
    rows = dict(obs=[], actions=[], values=[], rewards=[], dones=[])
    for _ in range(nsteps):
        newest = float(obs[0, 0, -1])
        action, value = int(newest % 7), newest / 10
        rows["obs"].append(obs)
        rows["actions"].append(action)
        rows["values"].append(value)
        rows["dones"].append(done)
        obs, reward, terminated, truncated, _ = one.step(action)
        if truncated and not terminated and bootstrap:
            reward += gamma * float(obs[0, 0, -1]) / 10        # gamma * V(final observation)
        done = terminated or truncated
        if done:
            obs, _ = one.reset()
        rows["rewards"].append(reward)
    _, returns = gae_reference(np.array(rows["rewards"])[:, None], np.array(rows["values"])[:, None],
                               np.array(rows["dones"])[:, None], np.array([float(obs[0, 0, -1]) / 10]),
                               np.array([done]), gamma, lam)
    return rows, returns[:, 0], obs


@pytest.mark.parametrize("bootstrap", [True, False])
def test_runner_batches_are_env_major_with_exact_returns(bootstrap):
    makes = [functools.partial(fake_envs.make_counting, length=3),               # terminates every 3 steps
             functools.partial(fake_envs.make_counting, max_episode_steps=4),    # cut by a time limit
             functools.partial(fake_envs.make_counting, length=5)]
    nsteps, gamma, lam, seed = 7, 0.9, 0.8, 2
    venv = DummyVecEnv(makes, seed=seed)
    runner = Runner(venv, StubModel(), Collection(nsteps, gamma, bootstrap_truncated=bootstrap))
    obs, actions, returns, values, _neglogpacs, episodes = finish(runner.sample(), gamma, lam)
    n = nsteps * len(makes)
    obs = np.asarray(obs[np.arange(n)])
    assert obs.shape == (n, 96, 96, 4) and obs.dtype == np.uint8
    assert actions.shape == (n,) and actions.dtype == np.int32
    assert returns.shape == values.shape == (n,) and returns.dtype == values.dtype == np.float32
    for env_idx, make in enumerate(makes):
        rows, expected_returns, last_obs = expected_rollout(make, seed + env_idx, nsteps, gamma, lam, bootstrap)
        part = slice(env_idx * nsteps, (env_idx + 1) * nsteps)           # env-major: each env's steps together
        np.testing.assert_array_equal(obs[part], np.stack(rows["obs"]))
        np.testing.assert_array_equal(actions[part], rows["actions"])
        np.testing.assert_allclose(values[part], rows["values"], rtol=1e-6)
        np.testing.assert_allclose(returns[part], expected_returns, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(runner.obs[env_idx], last_obs)
        assert venv.envs[env_idx].unwrapped.actions == rows["actions"]
    # episodes ended: env 0 after steps 3 and 6, env 1 after step 4, env 2 after step 5
    assert sorted((e["l"], e["truncated"]) for e in episodes) == [(3, False), (3, False), (4, True), (5, False)]
    # the reference itself, by hand: env 1 (seed 3, base 120) is cut after step 4, whose reward is 4 / 2; its
    # final observation's newest frame is 120 + 3 * 4 = 132, so V = 13.2 and the bootstrap adds 0.9 * 13.2
    rows, _, _ = expected_rollout(makes[1], seed + 1, nsteps, gamma, lam, bootstrap)
    assert rows["rewards"][3] == pytest.approx(2.0 + (0.9 * 13.2 if bootstrap else 0.0))
    assert rows["dones"][4] and not any(rows["dones"][:4])


def test_runner_continues_where_the_last_batch_stopped():
    venv = DummyVecEnv([functools.partial(fake_envs.make_counting, length=5)], seed=0)
    runner = Runner(venv, StubModel(), Collection(3, 0.9))
    first = np.asarray(runner.sample().obs[np.arange(3)])
    second = np.asarray(runner.sample().obs[np.arange(3)])
    rows, _, _ = expected_rollout(lambda: fake_envs.make_counting(length=5), 0, 6, 0.9, 0.95, True)
    np.testing.assert_array_equal(np.concatenate([first, second]), np.stack(rows["obs"]))


class LifeEveryTwoSteps(gym.Wrapper):
    """Flags info['life_lost'] on every second step of an episode, as env.LifeLoss does when a life goes."""

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, reward, terminated, truncated, (dict(info, life_lost=True) if self.t % 2 == 0 else info)


@pytest.mark.parametrize("life_loss_terminal", [False, True])
def test_a_lost_life_ends_the_value_chain_only_with_life_loss_terminal(life_loss_terminal):
    def make():
        return LifeEveryTwoSteps(fake_envs.make_counting(length=5))
    nsteps, gamma, lam = 7, 0.9, 0.8
    runner = Runner(DummyVecEnv([make], seed=0), StubModel(), Collection(nsteps, gamma,
                                                                       life_loss_terminal=life_loss_terminal))
    obs, _actions, returns, values, _neglogpacs, episodes = finish(runner.sample(), gamma, lam)
    rows, plain_returns, last_obs = expected_rollout(make, 0, nsteps, gamma, lam, True)
    # the episode and its frames go on whatever the flag: same observations, one episode of 5 steps
    np.testing.assert_array_equal(np.asarray(obs[np.arange(nsteps)]), np.stack(rows["obs"]))
    assert [e["l"] for e in episodes] == [5] and not runner.dones[0]
    if not life_loss_terminal:
        np.testing.assert_allclose(returns, plain_returns, rtol=1e-5, atol=1e-5)
        return
    # steps 1 and 3 lose a life, step 4 ends the episode, step 6 (the next episode's second) loses one:
    # the chain starts again at observations 2, 4 and 5, and the last observation follows a lost life
    starts = np.array(rows["dones"])
    assert starts.tolist() == [False] * 5 + [True, False]
    starts[[2, 4]] = True
    _, expected = gae_reference(np.array(rows["rewards"])[:, None], np.array(rows["values"])[:, None],
                                starts[:, None], np.array([float(last_obs[0, 0, -1]) / 10]), np.array([True]),
                                gamma, lam)
    np.testing.assert_allclose(returns, expected[:, 0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(returns, plain_returns)   # the cuts changed the targets


def test_life_loss_penalty_lowers_only_the_learners_reward_of_a_step_that_cost_a_life():
    def make():
        return LifeEveryTwoSteps(fake_envs.make_counting(length=5))

    def rollout(penalty):
        venv = DummyVecEnv([make], seed=0)
        obs = venv.reset()
        return collect(venv, StubModel(), obs, np.zeros(1, bool), action_rngs(0, [0]),
                       Collection(7, 0.9, life_loss_penalty=penalty))[0]
    plain, penalised = rollout(0.0), rollout(0.25)
    # steps 1, 3 (episode one's 2nd and 4th) and 6 (episode two's 2nd) lose a life: 0.25 less there, nowhere else
    np.testing.assert_array_equal(plain.rewards[:, 0] - penalised.rewards[:, 0],
                                  np.float32([0, 0.25, 0, 0.25, 0, 0, 0.25]))
    assert [e["r"] for e in penalised.episodes] == [e["r"] for e in plain.episodes]   # the logged game score
    np.testing.assert_array_equal(penalised.dones, plain.dones)   # and no cut of the value chain by itself


# ----------------------------------------------------------------------------- truncation

def _learned_value(tmp_path, truncation_as_terminal):
    """Train A2C on the endless reward-1 env cut at 10 steps (gamma 0.9) and return V of its observation."""
    venv = DummyVecEnv(fake_envs.endless_fns(1, max_episode_steps=10), seed=0)
    name = "terminal" if truncation_as_terminal else "bootstrap"
    run = learn(A2CPolicy, venv, nsteps=8, total_timesteps=8 * 90, gamma=0.9, lam=0.95, vf_coef=0.5, ent_coef=0.0,
                lr=1e-2, max_grad_norm=0.5, log_interval=1000, noptepochs=1, nminibatches=1, seed=0,
                optimizer="rmsprop-2018",   # this test is about time limits; its step size was tuned for this one
                truncation_as_terminal=truncation_as_terminal, run_dir=str(tmp_path / "runs" / name),
                runs_dir=str(tmp_path / "runs"), models_dir=str(tmp_path / f"models-{name}"), progress=False,
                stream=io.StringIO())
    g = tf.Graph()
    with g.as_default(), tf.Session(graph=g) as sess, sess.as_default():
        m = new_model(nenvs=1, nsteps=1)
        m.load(resolve_checkpoint(run, str(tmp_path / f"models-{name}")))
        return float(m.value(fake_envs.EndlessEnv().obs[None])[0])


@pytest.mark.slow
def test_time_limit_cuts_are_bootstrapped_unless_treated_as_terminal(tmp_path):
    # true value of an endless reward-1 stream: 1 / (1 - 0.9) = 10. Treating the cut at 10 steps as an end
    # gives the average of 10 (1 - 0.9^m) over m = 1..10 steps left, about 4.1.
    bootstrapped = _learned_value(tmp_path, truncation_as_terminal=False)
    terminal = _learned_value(tmp_path, truncation_as_terminal=True)
    assert 9.0 < bootstrapped < 11.0
    assert terminal < 6.5


# ----------------------------------------------------------------------------- learning

@pytest.mark.slow
def test_a2c_learns_the_best_action_of_an_image_bandit(tmp_path):
    venv = DummyVecEnv(fake_envs.bandit_fns(4, episode_length=8), seed=0)
    out = io.StringIO()
    run = learn(A2CPolicy, venv, nsteps=16, total_timesteps=1536, gamma=0.5, lam=0.95, vf_coef=0.5, ent_coef=0.01,
                lr=3e-3, max_grad_norm=0.5, log_interval=1000, noptepochs=1, nminibatches=2, seed=0,
                run_dir=str(tmp_path / "runs" / "bandit"), runs_dir=str(tmp_path / "runs"),
                models_dir=str(tmp_path / "models"), progress=False, stream=out)
    assert run == str(tmp_path / "runs" / "bandit")
    assert "policy_entropy" in out.getvalue()
    with open(os.path.join(run, "progress.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["nupdates"]) for r in rows] == [1, 24]
    # fresh contexts, never seen in training; chance is 1/7 (1/2 even knowing only actions 0 and 1 pay)
    rng = np.random.default_rng(12345)
    sides = rng.integers(0, 2, size=400)
    obs = np.stack([ImageBandit.render_context(side, rng) for side in sides])
    g = tf.Graph()
    with g.as_default(), tf.Session(graph=g) as sess, sess.as_default():
        m = new_model(nenvs=1, nsteps=1)
        m.load(resolve_checkpoint("latest", str(tmp_path / "models")))
        chosen = m.step_model.select_action(obs, deterministic=True)
    accuracy = float((chosen == sides).mean())
    assert accuracy >= 0.8, (accuracy, np.bincount(chosen, minlength=7))
    # the training episodes got better too: the mean return (8 steps, 1 per right answer) rose from chance
    assert float(rows[-1]["ep_return_mean"]) > float(rows[0]["ep_return_mean"])


class SamplingStub(StubModel):
    """Draws each env's action from that env's own generator, shifted by its observation: as with A2CPolicy, an
    env's actions depend on its observations and its stream alone, not on which envs share the call."""

    def step_neglogp(self, obs, rngs=None):
        actions, values, neglogp = super().step_neglogp(obs)
        drawn = np.array([rng.integers(7) for rng in rngs])
        return ((actions + drawn) % 7).astype(np.int32), values, neglogp


def life_every_two_steps(length):
    return LifeEveryTwoSteps(fake_envs.make_counting(length=length))


def double_buffer_makes(nenvs):
    return [functools.partial(fake_envs.make_counting, length=3),              # terminates every 3 steps
            functools.partial(fake_envs.make_counting, max_episode_steps=4),   # cut by a time limit
            functools.partial(life_every_two_steps, 5)][:nenvs]                 # loses lives


@pytest.mark.parametrize("vec", [DummyVecEnv, SubprocVecEnv])
@pytest.mark.parametrize("nenvs", [2, 3])
def test_double_buffered_sampling_collects_what_stepping_in_turn_collects(vec, nenvs):
    """Two samples of 7 steps, in turn and double-buffered (halves of 1 and 1, or 1 and 2 envs), episodes ending,
    cut by the time limit and losing lives on the way: every array of the rollouts, the episodes, where the envs
    stand after, and the generators' states are the same."""
    collected = {}
    for double_buffer in (False, True):
        venv = vec(double_buffer_makes(nenvs), seed=4)
        try:
            settings = Collection(7, 0.9, life_loss_terminal=True, life_loss_penalty=0.25, double_buffer=double_buffer)
            runner = Runner(venv, SamplingStub(), settings, action_rngs(3, range(nenvs)))
            rollouts = [runner.sample(), runner.sample()]
            collected[double_buffer] = rollouts, runner.obs, runner.dones, [r.bit_generator.state for r in runner.rngs]
        finally:
            venv.close()
    (serial, obs, dones, states), (double, obs_2, dones_2, states_2) = collected[False], collected[True]
    for one, other in zip(serial, double):
        np.testing.assert_array_equal(np.asarray(other.obs), np.asarray(one.obs))
        for name in ("actions", "rewards", "values", "neglogpacs", "dones", "last_values", "last_dones"):
            np.testing.assert_array_equal(getattr(other, name), getattr(one, name), err_msg=name)
        assert other.episodes == one.episodes
    assert sum(len(r.episodes) for r in serial) >= 4
    np.testing.assert_array_equal(obs_2, obs)
    np.testing.assert_array_equal(dones_2, dones)
    assert states_2 == states


def test_a_stop_mid_way_through_double_buffered_sampling_leaves_no_answer_in_the_pipes():
    """Stopped at its third step, the double-buffered sample reads the answers still in flight (the next step of
    one half is sent by then): no pipe holds an answer, and the next step of the vector env gets its own."""
    class StopAfter:
        def __init__(self, steps):
            self.steps, self.requested = steps, None

        def count(self, _vector_steps):
            self.steps -= 1
            self.requested = "SIGINT" if self.steps <= 0 else None
    venv = SubprocVecEnv(double_buffer_makes(3), seed=4)
    try:
        runner = Runner(venv, SamplingStub(), Collection(7, 0.9, double_buffer=True), action_rngs(3, range(3)))
        stop = StopAfter(3)
        assert runner.sample(stop.count, stop) is None and stop.steps == 0
        assert not any(conn.poll(0.5) for conn in venv.conns)
        obs, rewards, dones, infos = venv.step(np.zeros(3, np.int32))
        assert obs.shape == (3, 96, 96, 4) and len(infos) == 3 and not any(conn.poll(0) for conn in venv.conns)
    finally:
        venv.close()
