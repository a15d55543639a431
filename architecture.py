"""The A2C policy network of the 2018 scripts (the Nature CNN with a policy and a value head), in TF1 graph code.

Variables are named as in the checkpoints those scripts saved, so old checkpoints load:
    model/conv2d/{kernel,bias}     [8, 8, 4, 32]    conv 32 8x8 stride 4
    model/conv2d_1/{kernel,bias}   [4, 4, 32, 64]   conv 64 4x4 stride 2
    model/conv2d_2/{kernel,bias}   [3, 3, 64, 64]   conv 64 3x3 stride 1
    model/dense/{kernel,bias}      [4096, 512]      shared fully connected layer (for 96x96 inputs)
    model/pi/{w,b}                 [512, nactions]  policy logits
    model/dense_1/{kernel,bias}    [512, 1]         state value
Layers are built from `get_variable` and `tf.nn` ops (`tf.compat.v1.layers` does not work under Keras 3).
"""
import numpy as np
import tensorflow.compat.v1 as tf


def conv(inputs, scope, filters, kernel_size, stride, gain=np.sqrt(2)):
    """ReLU(conv2d(inputs)), VALID padding, orthogonal kernel init. inputs [batch, H, W, C] float32."""
    with tf.variable_scope(scope):
        in_channels = inputs.get_shape()[-1]
        kernel = tf.get_variable("kernel", [kernel_size, kernel_size, in_channels, filters],
                                 initializer=tf.orthogonal_initializer(gain))
        bias = tf.get_variable("bias", [filters], initializer=tf.zeros_initializer())
        return tf.nn.relu(tf.nn.conv2d(inputs, kernel, [1, stride, stride, 1], "VALID") + bias)


def dense(inputs, scope, units, gain=1.0, activation=None, weight_name="kernel", bias_name="bias"):
    """activation(inputs @ W + b), orthogonal W init. inputs [batch, features] float32."""
    with tf.variable_scope(scope):
        weights = tf.get_variable(weight_name, [inputs.get_shape()[-1], units],
                                  initializer=tf.orthogonal_initializer(gain))
        bias = tf.get_variable(bias_name, [units], initializer=tf.zeros_initializer())
        out = tf.matmul(inputs, weights) + bias
        return activation(out) if activation else out


class CategoricalPd:
    """A categorical distribution over actions given its logits [batch, nactions]."""

    def __init__(self, logits):
        self.logits = logits

    def mode(self):  # -> [batch] int32
        return tf.argmax(self.logits, axis=-1, output_type=tf.int32)

    def neglogp(self, actions):  # actions [batch] int32 -> [batch] float32
        # -log pi(a|s) = cross-entropy between the one-hot action and softmax(logits)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=actions, logits=self.logits)

    def entropy(self):  # -> [batch] float32
        # H = -sum_a p_a log p_a, computed on max-shifted logits for stability
        shifted = self.logits - tf.reduce_max(self.logits, axis=-1, keepdims=True)
        exp_shifted = tf.exp(shifted)
        normaliser = tf.reduce_sum(exp_shifted, axis=-1, keepdims=True)
        probs = exp_shifted / normaliser
        return tf.reduce_sum(probs * (tf.log(normaliser) - shifted), axis=-1)

    def sample(self):  # -> [batch] int32
        # Gumbel-max: argmax(logits - log(-log(u))), u ~ U(0, 1)
        uniform = tf.random.uniform(tf.shape(self.logits), dtype=self.logits.dtype)
        return tf.argmax(self.logits - tf.log(-tf.log(uniform)), axis=-1, output_type=tf.int32)


def neglogp_of(logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[action]. logits [batch, nactions] float32, actions [batch] int -> [batch] float32.

    >>> neglogp_of(np.zeros((1, 4), np.float32), np.array([2]))   # uniform over 4: log 4
    array([1.3862944], dtype=float32)
    """
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    # -log pi(a) = log sum_b exp(z_b) - z_a
    return (np.log(np.exp(shifted).sum(axis=-1)) - shifted[np.arange(len(actions)), actions]).astype(np.float32)


def sample_actions(logits: np.ndarray, rng) -> np.ndarray:
    """Gumbel-max sampling in numpy, so a run's random state can be saved and resumed exactly.
    logits [batch, nactions] float32 -> [batch] int32. rng: one Generator for the batch, or a list of one per
    row (each env its own stream, whatever else shares the batch)."""
    if isinstance(rng, (list, tuple)):
        uniform = np.stack([row_rng.random(logits.shape[-1]) for row_rng in rng])
    else:
        uniform = rng.random(logits.shape)
    return np.argmax(logits - np.log(-np.log(uniform)), axis=-1).astype(np.int32)


class A2CPolicy:
    """Shared CNN torso, policy head `pi` (logits) and value head `vf`; frames are fed as uint8.

    | attribute      | shape                   | meaning                                   |
    | `inputs_`      | [nbatch, 96, 96, 4] uint8 | stacked gray frames (placeholder)       |
    | `pi`           | [nbatch, nactions] f32  | policy logits                             |
    | `vf`           | [nbatch] f32            | state value V(s)                          |
    | `pd`           | CategoricalPd           | action distribution over `pi`             |
    `nbatch` is left open (None) so one network serves any batch size; `nbatch` and `nsteps` are kept for
    the seed's signature. `rng` samples actions in `step` / `select_action` (numpy, resumable).
    """

    def __init__(self, sess, ob_space, action_space, nbatch, nsteps, reuse=False, rng=None):
        self.sess = sess
        self.rng = rng if rng is not None else np.random.default_rng()
        self.initial_state = None   # no recurrent state
        with tf.variable_scope("model", reuse=reuse):
            self.inputs_ = tf.placeholder(tf.uint8, [None, *ob_space.shape], name="input")
            scaled = tf.cast(self.inputs_, tf.float32) / 255.0
            layer = conv(scaled, "conv2d", 32, 8, 4)
            layer = conv(layer, "conv2d_1", 64, 4, 2)
            layer = conv(layer, "conv2d_2", 64, 3, 1)
            flat = tf.reshape(layer, [-1, int(np.prod(layer.get_shape()[1:]))])
            common = dense(flat, "dense", 512, gain=np.sqrt(2), activation=tf.nn.relu)
            self.pi = dense(common, "pi", action_space.n, gain=0.01, weight_name="w", bias_name="b")
            self.vf = dense(common, "dense_1", 1)[:, 0]
        self.pd = CategoricalPd(self.pi)

    def step(self, obs, *_args, **_kwargs):
        """obs [n, 96, 96, 4] uint8 -> actions [n] int32 (sampled), values [n] float32."""
        actions, values, _neglogp = self.step_neglogp(obs)
        return actions, values

    def step_neglogp(self, obs, rngs=None):
        """obs [n, 96, 96, 4] uint8 -> actions [n] int32 (sampled), values [n] f32, -log pi(action) [n] f32.
        rngs: a generator per row (default: the policy's own generator for the whole batch)."""
        logits, values = self.sess.run([self.pi, self.vf], {self.inputs_: obs})
        actions = sample_actions(logits, self.rng if rngs is None else rngs)
        return actions, values, neglogp_of(logits, actions)

    def value(self, obs, *_args, **_kwargs):
        """obs [n, 96, 96, 4] uint8 -> values [n] float32."""
        return self.sess.run(self.vf, {self.inputs_: obs})

    def select_action(self, obs, *_args, deterministic=False, **_kwargs):
        """obs [n, 96, 96, 4] uint8 -> actions [n] int32: sampled, or the most likely one."""
        logits = self.sess.run(self.pi, {self.inputs_: obs})
        return np.argmax(logits, axis=-1).astype(np.int32) if deterministic else sample_actions(logits, self.rng)
