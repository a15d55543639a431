"""architecture.py: the 2018 checkpoints' variable names and shapes, the network's forward pass against numpy,
CategoricalPd against numpy, sampling frequencies and deterministic action selection; the RMSProp slot names a
Model creates. Every test builds its own tf.Graph and session."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from numpy.lib.stride_tricks import sliding_window_view

import model  # noqa: F401  (disables v2 behaviour, as the project runs)
from architecture import A2CPolicy, CategoricalPd, sample_actions
from model import Model

OB_SPACE = gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
ACTIONS = gym.spaces.Discrete(7)

CHECKPOINT_2018 = {
    "model/conv2d/kernel": [8, 8, 4, 32], "model/conv2d/bias": [32],
    "model/conv2d_1/kernel": [4, 4, 32, 64], "model/conv2d_1/bias": [64],
    "model/conv2d_2/kernel": [3, 3, 64, 64], "model/conv2d_2/bias": [64],
    "model/dense/kernel": [4096, 512], "model/dense/bias": [512],
    "model/pi/w": [512, 7], "model/pi/b": [7],
    "model/dense_1/kernel": [512, 1], "model/dense_1/bias": [1],
}

# logits with ordinary, tied, very large and very negative entries (the softmax must stay finite)
LOGITS = np.array([
    [1.0, 2.0, 3.0, 0.0, -1.0, 0.5, 2.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [1000.0, 999.0, 0.0, -5.0, 3.0, 998.5, 1.0],
    [-30.0, -31.0, -29.5, -40.0, -30.0, -33.0, -28.0],
], dtype=np.float32)


@pytest.fixture
def sess(session):   # the shared fresh graph and session (conftest.py), under this file's name
    return session


def np_softmax(logits):
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def np_neglogp(logits, actions):
    z = logits.astype(np.float64)
    m = z.max(axis=-1)
    logsumexp = m + np.log(np.exp(z - m[:, None]).sum(axis=-1))
    return logsumexp - z[np.arange(len(z)), actions]


def np_entropy(logits):
    p = np_softmax(logits)
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


def random_obs(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 96, 96, 4), dtype=np.uint8)


# ----------------------------------------------------------------------------- the network

def test_variables_are_named_and_shaped_as_the_2018_checkpoints(sess):
    A2CPolicy(sess, OB_SPACE, ACTIONS, 1, 1)
    got = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert got == CHECKPOINT_2018
    # the train model shares them: no new variable
    A2CPolicy(sess, OB_SPACE, ACTIONS, 8, 4, reuse=True)
    assert {v.op.name: v.shape.as_list() for v in tf.global_variables()} == CHECKPOINT_2018


def test_outputs_have_the_documented_shapes(sess):
    policy = A2CPolicy(sess, OB_SPACE, ACTIONS, None, 1)
    assert policy.inputs_.dtype == tf.uint8 and policy.inputs_.shape.as_list() == [None, 96, 96, 4]
    assert policy.pi.shape.as_list() == [None, 7]
    assert policy.vf.shape.as_list() == [None]
    sess.run(tf.global_variables_initializer())
    for batch in (1, 5):
        logits, values = sess.run([policy.pi, policy.vf], {policy.inputs_: random_obs(batch)})
        assert logits.shape == (batch, 7) and values.shape == (batch,)
        assert logits.dtype == np.float32 and values.dtype == np.float32


def np_forward(weights, obs):
    """The Nature CNN written out in numpy: /255, three VALID convs with ReLU, dense 512 ReLU, two heads."""
    def conv(x, kernel, bias, stride):
        k = kernel.shape[0]
        windows = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # [n, oh, ow, c, k, k]
        return np.maximum(np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias, 0.0)

    x = obs.astype(np.float64) / 255.0
    x = conv(x, weights["model/conv2d/kernel"], weights["model/conv2d/bias"], 4)       # [n, 23, 23, 32]
    x = conv(x, weights["model/conv2d_1/kernel"], weights["model/conv2d_1/bias"], 2)   # [n, 10, 10, 64]
    x = conv(x, weights["model/conv2d_2/kernel"], weights["model/conv2d_2/bias"], 1)   # [n, 8, 8, 64]
    assert x.shape[1:] == (8, 8, 64)
    x = x.reshape(len(x), -1)                                                          # [n, 4096]
    x = np.maximum(x @ weights["model/dense/kernel"] + weights["model/dense/bias"], 0.0)
    logits = x @ weights["model/pi/w"] + weights["model/pi/b"]
    values = (x @ weights["model/dense_1/kernel"] + weights["model/dense_1/bias"])[:, 0]
    return logits, values


def test_forward_pass_matches_numpy(sess):
    policy = A2CPolicy(sess, OB_SPACE, ACTIONS, None, 1)
    sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(1)
    # non-zero biases and a larger policy head, so every term shows in the outputs
    for var in tf.trainable_variables():
        value = sess.run(var)
        if var.op.name.endswith(("bias", "/b")):
            value = rng.normal(0, 0.1, size=value.shape).astype(np.float32)
        if var.op.name == "model/pi/w":
            value = value * 100
        var.load(value, sess)
    weights = {v.op.name: sess.run(v).astype(np.float64) for v in tf.trainable_variables()}
    obs = random_obs(3, seed=2)
    logits, values = sess.run([policy.pi, policy.vf], {policy.inputs_: obs})
    expected_logits, expected_values = np_forward(weights, obs)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values, expected_values, rtol=1e-4, atol=1e-4)
    assert np.abs(expected_logits).max() > 0.1 and np.ptp(expected_values) > 0


# ----------------------------------------------------------------------------- the distribution

def test_categorical_neglogp_entropy_and_mode_against_numpy(sess):
    logits = tf.constant(LOGITS)
    pd = CategoricalPd(logits)
    actions = np.array([2, 5, 5, 3], dtype=np.int32)
    neglogp, entropy, mode = sess.run([pd.neglogp(tf.constant(actions)), pd.entropy(), pd.mode()])
    np.testing.assert_allclose(neglogp, np_neglogp(LOGITS, actions), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(entropy, np_entropy(LOGITS), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mode, LOGITS.argmax(axis=-1))
    # worked out by hand: equal logits give log 7 for both
    assert entropy[1] == pytest.approx(np.log(7), rel=1e-6)
    assert neglogp[1] == pytest.approx(np.log(7), rel=1e-6)
    assert np.isfinite(entropy).all() and np.isfinite(neglogp).all()


def test_tf_sample_frequencies_follow_the_softmax(sess):
    n = 40000
    row = LOGITS[0]
    samples = sess.run(CategoricalPd(tf.constant(np.tile(row, (n, 1)))).sample())
    assert samples.shape == (n,) and samples.dtype == np.int32
    frequencies = np.bincount(samples, minlength=7) / n
    np.testing.assert_allclose(frequencies, np_softmax(row[None])[0], atol=0.012)   # > 4.5 standard deviations


def test_numpy_sample_actions_follow_the_softmax_and_are_reproducible():
    n = 40000
    for row in LOGITS:                                    # huge logits too: no overflow
        logits = np.tile(row, (n, 1))
        samples = sample_actions(logits, np.random.default_rng(3))
        assert samples.shape == (n,) and samples.dtype == np.int32
        frequencies = np.bincount(samples, minlength=7) / n
        np.testing.assert_allclose(frequencies, np_softmax(row[None])[0], atol=0.012)
        np.testing.assert_array_equal(sample_actions(logits, np.random.default_rng(3)), samples)
        assert not np.array_equal(sample_actions(logits, np.random.default_rng(4)), samples)


def test_select_action_deterministic_is_argmax_and_sampling_uses_the_policy_rng(sess):
    policy = A2CPolicy(sess, OB_SPACE, ACTIONS, None, 1, rng=np.random.default_rng(9))
    sess.run(tf.global_variables_initializer())
    pi_w = [v for v in tf.trainable_variables() if v.op.name == "model/pi/w"][0]
    pi_w.load(sess.run(pi_w) * 300, sess)                 # spread the logits so argmax is clear-cut
    obs = random_obs(64, seed=5)
    logits = sess.run(policy.pi, {policy.inputs_: obs})
    chosen = policy.select_action(obs, deterministic=True)
    assert chosen.dtype == np.int32
    np.testing.assert_array_equal(chosen, logits.argmax(axis=-1))
    assert len(set(chosen.tolist())) > 1                  # the observations do lead to different actions
    # sampling: exactly sample_actions with the policy's own generator
    sampled = policy.select_action(obs)
    np.testing.assert_array_equal(sampled, sample_actions(logits, np.random.default_rng(9)))
    actions, values = policy.step(obs)
    np.testing.assert_array_equal(actions, sample_actions(logits, _advanced_rng(9, logits.shape)))
    np.testing.assert_allclose(values, policy.value(obs), rtol=1e-6)
    assert values.shape == (64,)


def _advanced_rng(seed, shape):
    rng = np.random.default_rng(seed)
    rng.random(shape)
    return rng


# ----------------------------------------------------------------------------- optimiser slots

def test_rmsprop_slots_are_named_as_tf1_names_them(sess):
    Model(A2CPolicy, OB_SPACE, ACTIONS, 2, 4, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5)
    names = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    assert "model/conv2d/kernel/RMSProp" in names and "model/conv2d/kernel/RMSProp_1" in names
    expected = dict(CHECKPOINT_2018)
    for name, shape in CHECKPOINT_2018.items():
        expected[f"{name}/RMSProp"] = shape          # mean square
        expected[f"{name}/RMSProp_1"] = shape        # momentum
    assert names == expected
