"""A2C, in the order data flows: the Model (the policy's graph, losses and train op), the Runner (experience
from the envs), GAE (advantages and the training batch), `learn` (the loop: sample, train, log, save) and
`play` (watch a checkpoint). Each part is under a heading comment below.

TF1 graph code through `tensorflow.compat.v1` with v2 behaviour disabled, as the 2018 scripts were written.
"""
from __future__ import annotations   # the learn part names its helper classes, defined after it, in annotations

import collections
import dataclasses
import os
import signal
import threading
import time
import typing

import numpy as np
import tensorflow.compat.v1 as tf

from checkpoint import CheckpointError, RunFolder, default_run_dir, load_state, resolve_checkpoint
from config import BEHAVIOUR_2018, OPTIMIZERS, POLICY_LOSSES, ConfigError, TrainConfig, resolve, validate
from logger import RunLogger, TimeEstimate
from monitor import CollapseWatch, Evaluation, evaluation_levels, record_video, training_level_figures
from rollout import Collection, RemoteEnvs, Rollout, RolloutObs, Sampler
from vec_env import WorkerError

tf.get_logger().setLevel("ERROR")   # TF1-API deprecation notices are expected here
tf.disable_v2_behavior()

EPISODE_WINDOW = 100   # episodes averaged in the table's ep_return_mean / ep_length_mean


class NonFiniteError(FloatingPointError):
    """A loss, gradient or weight became NaN or infinite."""


def session_config(threads: int = 0) -> "tf.ConfigProto":
    """Session options: GPU memory grows as needed; `threads` > 0 caps TF's CPU thread pools."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=min(threads, 1) if threads else 0)
    config.gpu_options.allow_growth = True
    return config


# ============================================================ the Model: the policy's graph, losses, train op

def zero_start_rmsprop(grads_and_params, lr, decay=0.99, epsilon=1e-5, name="RMSPropZero"):
    """RMSProp whose mean-square slot starts at 0 and is bias-corrected, epsilon outside the root (that is Adam
    with beta1 = 0). TF1's RMSPropOptimizer starts the slot at 1.0, so while gradients are far below 1 its
    first ~1,500 steps barely move the weights; here the first step already has size ~lr per weight.
    grads_and_params: [(gradient, variable)]; lr: scalar tensor. Returns the update op.

        v_t = decay * v_t-1 + (1 - decay) * g_t^2,   v_0 = 0
        p_t = p_t-1 - lr * g_t / (sqrt(v_t / (1 - decay^t)) + epsilon)
    """
    with tf.variable_scope(name):
        step = tf.get_variable("step", [], tf.float32, tf.zeros_initializer(), trainable=False)
    step_t = tf.assign_add(step, 1.0)
    correction = 1.0 - tf.pow(decay, step_t)   # 1 - decay^t
    updates = []
    for grad, param in grads_and_params:
        mean_square = tf.get_variable(f"{param.op.name}/{name}", param.shape, tf.float32, tf.zeros_initializer(),
                                      trainable=False)
        new_mean_square = tf.assign(mean_square, decay * mean_square + (1.0 - decay) * tf.square(grad))
        updates.append(tf.assign_sub(param, lr * grad / (tf.sqrt(new_mean_square / correction) + epsilon)))
    return tf.group(*updates)


def clipped_gradients(loss, params, max_grad_norm):
    """-> (gradients of loss for params, clipped to the global norm max_grad_norm unless it is None; their
    global norm before clipping)."""
    grads = tf.gradients(loss, params)
    if max_grad_norm is None:
        return grads, tf.global_norm(grads)
    return tf.clip_by_global_norm(grads, max_grad_norm)


class Model:
    """A step model (sampling) and a train model sharing one set of weights, in the default session.

    | placeholder  | shape | meaning                                                   |
    | actions_     | [n]   | actions taken, int32                                      |
    | advantages_  | [n]   | returns - values                                          |
    | rewards_     | [n]   | returns (value targets)                                   |
    | old_neglogp_ | [n]   | -log pi_old(a|s) when sampled (the ratio of the capped    |
    |              |       | and clipped losses; the KL of every loss)                 |
    | lr_          | []    | learning rate of this call                                |

    Called with only the 2018 arguments it builds the 2018 graph: TF1 RMSProp (decay 0.99, epsilon 1e-5 inside
    the root, mean square starting at 1.0), raw advantages, the plain policy-gradient loss. The keywords choose
    the project's improvements: `optimizer` ('rmsprop-2018', 'rmsprop': zero-start and bias-corrected, 'adam'),
    `normalize_advantages` (per minibatch), `policy_loss` (config.POLICY_LOSSES: 'a2c', 'capped' with its
    `ratio_cap`, 'clip' with its `clip_range`; see _policy_loss), `epsilon` (of 'rmsprop' and 'adam'; the 2018
    optimizer keeps its 1e-5 inside the root) and `value_only_steps` (train(..., value_only=True) then steps
    the value loss alone, with an Adam of its own). Every loss measures KL(pi_old || pi) on each minibatch it
    is given the sampled -log pi_old of (last_approx_kl), the clip also the fraction it clipped
    (last_clip_fraction).
    """

    def __init__(self, policy, ob_space, action_space, nenvs, nsteps, ent_coef, vf_coef, max_grad_norm, rng=None,
                 *, optimizer="rmsprop-2018", normalize_advantages=False, policy_loss="a2c", ratio_cap=1.0,
                 clip_range=0.2, epsilon=1e-5, value_only_steps=False):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if policy_loss not in POLICY_LOSSES:
            raise ValueError(f"policy_loss must be one of {', '.join(POLICY_LOSSES)}, got {policy_loss!r}")
        self.sess = sess = tf.get_default_session()
        self.normalize_advantages, self.policy_loss, self.epsilon = normalize_advantages, policy_loss, epsilon
        self.ratio_cap, self.clip_range = ratio_cap, clip_range
        self.last_approx_kl = self.last_clip_fraction = None
        self.actions_ = tf.placeholder(tf.int32, [None], name="actions")
        self.advantages_ = tf.placeholder(tf.float32, [None], name="advantages")
        self.rewards_ = tf.placeholder(tf.float32, [None], name="returns")
        self.lr_ = tf.placeholder(tf.float32, [], name="learning_rate")
        self.step_model = policy(sess, ob_space, action_space, nenvs, 1, reuse=False, rng=rng)
        self.train_model = train_model = policy(sess, ob_space, action_space, nenvs * nsteps, nsteps, reuse=True,
                                                rng=rng)
        # made after the policy: ops made before it would move the op seeds of its initial weights
        self.old_neglogp_ = tf.placeholder(tf.float32, [None], name="old_neglogp")
        neglogpac = train_model.pd.neglogp(self.actions_)
        # KL(pi_old || pi) ~ mean(log pi_old(a|s) - log pi(a|s)) over actions drawn from pi_old
        self.approx_kl = tf.reduce_mean(neglogpac - self.old_neglogp_)
        self.clip_fraction = None
        self.pg_loss = self._policy_loss(neglogpac)
        # L_v = mean((R - V(s))^2) / 2
        self.vf_loss = tf.reduce_mean(tf.square(train_model.vf - self.rewards_)) / 2.0
        # H = mean entropy of pi(.|s)
        self.entropy = tf.reduce_mean(train_model.pd.entropy())
        # L = L_pg - ent_coef * H + vf_coef * L_v
        self.loss = self.pg_loss - self.entropy * ent_coef + self.vf_loss * vf_coef
        self.params = tf.trainable_variables("model")
        grads, self.grad_norm = clipped_gradients(self.loss, self.params, max_grad_norm)
        self._train = self._build_train_op(optimizer, list(zip(grads, self.params)))
        self._train_value, self._value_grad_norm = self._build_value_op(vf_coef, max_grad_norm) if value_only_steps \
            else (None, None)
        self._weights_finite = [tf.reduce_all(tf.is_finite(p)) for p in self.params]
        self.saver = tf.train.Saver(tf.global_variables(), max_to_keep=None)
        self.step = self.step_model.step
        self.step_neglogp = self.step_model.step_neglogp
        self.value = self.step_model.value
        sess.run(tf.global_variables_initializer())

    @property
    def needs_old_neglogp(self) -> bool:
        """The loss itself reads -log pi_old (the capped and clipped losses' ratio)."""
        return self.policy_loss != "a2c"

    def _policy_loss(self, neglogpac):
        """The policy loss that policy_loss names. neglogpac [n] f32: -log pi(a|s) of the train model."""
        if self.policy_loss == "a2c":
            # L_pg = mean(A * -log pi(a|s))
            return tf.reduce_mean(self.advantages_ * neglogpac)
        ratio = tf.exp(self.old_neglogp_ - neglogpac)   # pi(a|s) / pi_old(a|s)
        if self.policy_loss == "capped":
            # L_pg = mean(w * A * -log pi(a|s)), w = min(ratio_cap, pi/pi_old) held constant (no gradient through w)
            return tf.reduce_mean(tf.stop_gradient(tf.minimum(ratio, self.ratio_cap)) * self.advantages_ * neglogpac)
        # the share of samples whose ratio lies outside [1 - clip_range, 1 + clip_range]
        self.clip_fraction = tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > self.clip_range, tf.float32))
        clipped = tf.clip_by_value(ratio, 1.0 - self.clip_range, 1.0 + self.clip_range)
        # L_clip = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))
        return tf.reduce_mean(tf.maximum(-self.advantages_ * ratio, -self.advantages_ * clipped))

    def _build_train_op(self, optimizer, grads_and_params):
        """The update op of `optimizer` for [(gradient, variable)], at the fed learning rate lr_."""
        if optimizer == "rmsprop":
            return zero_start_rmsprop(grads_and_params, self.lr_, decay=0.99, epsilon=self.epsilon)
        if optimizer == "adam":
            return self._adam("Adam").apply_gradients(grads_and_params)
        return tf.train.RMSPropOptimizer(learning_rate=self.lr_, decay=0.99, epsilon=1e-5).apply_gradients(
            grads_and_params)

    def _build_value_op(self, vf_coef, max_grad_norm):
        """A step on vf_coef * L_v alone, of an Adam whose moments are its own (the policy's momentum must not
        carry on in these steps): it moves the shared layers and the value head, never `model/pi`.
        -> (the op, the global norm of its gradients before clipping)."""
        params = [p for p in self.params if not p.op.name.startswith("model/pi/")]
        grads, grad_norm = clipped_gradients(self.vf_loss * vf_coef, params, max_grad_norm)
        return self._adam("ValueAdam").apply_gradients(list(zip(grads, params))), grad_norm

    def _adam(self, name):
        """Adam at the fed learning rate; `name` prefixes its slots (checkpoint names)."""
        return tf.train.AdamOptimizer(self.lr_, beta1=0.9, beta2=0.999, epsilon=self.epsilon, name=name)

    def train(self, states_in, actions, returns, values, lr, neglogpacs=None, value_only=False):
        """One optimizer step on a minibatch.
        states_in [n, 96, 96, 4] uint8, actions [n] int32, returns [n] f32, values [n] f32, neglogpacs [n] f32
        (-log pi_old(a|s) when sampled; needed by the capped and clipped losses); value_only: a step of the
        value loss alone (a model built with value_only_steps)
        -> (policy_loss, value_loss, policy_entropy). Given neglogpacs, `last_approx_kl` holds KL(pi_old || pi)
        on this minibatch before the step, and with the clip `last_clip_fraction` the share it clipped.
        Raises NonFiniteError before returning bad numbers."""
        advantages = returns - values
        if self.normalize_advantages:
            # A <- (A - mean(A)) / (std(A) + 1e-8), per minibatch
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        feed = {self.train_model.inputs_: states_in, self.actions_: actions, self.advantages_: advantages,
                self.rewards_: returns, self.lr_: lr}
        if neglogpacs is None and self.needs_old_neglogp:
            raise ValueError(f"the {self.policy_loss!r} policy loss needs the neglogpacs of the sampled actions")
        if value_only and self._train_value is None:
            raise ValueError("value_only steps need a model built with value_only_steps=True")
        # a value step fetches its own gradient norm: the full loss's would cost a backward pass it does not use
        fetches = [self.pg_loss, self.vf_loss, self.entropy, self._value_grad_norm, self._train_value] if value_only \
            else [self.pg_loss, self.vf_loss, self.entropy, self.grad_norm, self._train]
        measures = []
        if neglogpacs is not None:
            feed[self.old_neglogp_] = neglogpacs
            measures = [self.approx_kl] + ([self.clip_fraction] if self.clip_fraction is not None else [])
        policy_loss, value_loss, policy_entropy, grad_norm, _, *measured = self.sess.run(fetches + measures, feed)
        if measured:
            self.last_approx_kl, self.last_clip_fraction = (measured + [None])[:2]
        for name, value in (("policy loss", policy_loss), ("value loss", value_loss),
                            ("entropy", policy_entropy), ("gradient norm", grad_norm)):
            if not np.isfinite(value):
                raise NonFiniteError(f"the {name} became {value}")
        return policy_loss, value_loss, policy_entropy

    def check_weights(self) -> None:
        """Raise NonFiniteError naming the first weight that holds NaN or infinity."""
        for param, finite in zip(self.params, self.sess.run(self._weights_finite)):
            if not finite:
                raise NonFiniteError(f"the weight {param.op.name} became NaN or infinite")

    def save(self, save_path: str) -> None:
        """Write every variable (weights and optimizer slots) as a TF checkpoint at prefix `save_path`."""
        os.makedirs(os.path.dirname(os.path.abspath(save_path)), exist_ok=True)
        self.saver.save(self.sess, save_path, write_meta_graph=False, write_state=False)

    def load(self, load_path: str) -> bool:
        """Restore from a TF checkpoint prefix. A weights-only checkpoint (as some 2018 runs saved) restores the
        weights and leaves the optimizer slots fresh. Returns True when the optimizer state was restored too."""
        try:
            stored = tf.train.load_checkpoint(load_path).get_variable_to_shape_map()
        except Exception as error:   # missing, truncated or not a checkpoint at all
            raise CheckpointError(f"cannot read checkpoint {load_path!r}: {str(error).splitlines()[0]}") from None
        for param in self.params:
            name, shape = param.op.name, param.shape.as_list()
            if name not in stored:
                raise CheckpointError(f"checkpoint {load_path!r} has no variable {name}: it was not saved by this "
                                      "architecture (A2CPolicy)")
            if list(stored[name]) != shape:
                hint = " (another number of actions)" if name.startswith("model/pi/") else \
                    " (another observation size or network)"
                raise CheckpointError(f"checkpoint {load_path!r} holds {name} of shape {list(stored[name])}, this "
                                      f"model needs {shape}{hint}")
        variables = tf.global_variables()
        full = all(v.op.name in stored and list(stored[v.op.name]) == v.shape.as_list() for v in variables)
        saver = self.saver if full else tf.train.Saver(self.params)
        try:
            saver.restore(self.sess, load_path)
        except Exception as error:
            raise CheckpointError(f"checkpoint {load_path!r} is corrupt or truncated "
                                  f"({str(error).splitlines()[0]}): use an earlier checkpoint") from None
        return full


# ============================================================ the Runner: experience from the envs

ACTION_STREAM = 0x5A17   # tags the action-noise streams apart from every other use of the run's seed


def action_rngs(seed: int, env_indices) -> list:
    """One action-noise generator per env, drawn from (seed, env index) alone, so env i samples the same
    actions whichever process steps it (the local Runner or a remote worker holding envs i..i+E-1)."""
    return [np.random.default_rng(np.random.SeedSequence([seed, ACTION_STREAM, int(i)])) for i in env_indices]


def collect(venv, policy, obs, dones, rngs, settings: Collection, on_step=None, stop=None):
    """Step the vector env `venv` for settings.nsteps with `policy` (step_neglogp(obs, rngs), value(obs)).
    obs [nenvs, 96, 96, 4] uint8 and dones [nenvs] bool: where the envs stand; rngs: one generator per env.
    -> (Rollout, obs, dones after the last step), or None once stop.requested turned true mid-way; on_step(1)
    after every vector step.

    settings (rollout.Collection): with `bootstrap_truncated`, an episode cut by the time limit is not treated
    as an end: its last reward gets gamma * V(final observation) added, as if the episode had gone on. With
    `life_loss_terminal`, a step that cost a life (info['life_lost'], env.LifeLoss) ends the value chain as an
    episode's end does: the Rollout's dones, which only GAE reads, mark the observation after it (the episode
    and its frames go on). `life_loss_penalty` is subtracted from the reward of a step that cost a life (the
    episodes' returns, counted in the env, stay the game's own). With `double_buffer` (and 2 envs or more) the
    envs are stepped in two halves, each half's inference running while the other half's envs step
    (_double_buffered); each env sees the same observations and actions as in turn (up to the float rounding of
    the policy's outputs on half the batch)."""
    builder = RolloutBuilder(settings, obs, dones)
    steps = _double_buffered if settings.double_buffer and venv.num_envs > 1 else _in_turn
    stepping = steps(venv, policy, rngs, builder)
    for _step in stepping:
        if on_step is not None:
            on_step(1)
        if stop is not None and stop.requested:
            stepping.close()   # a step still in flight is received first (_double_buffered)
            return None
    return builder.rollout(policy.value(builder.obs)), builder.obs, builder.dones


class RolloutBuilder:
    """The arrays of one Rollout, filled step by step: `chosen` records what the policy chose from a step's
    observation, `stepped` what the envs answered; `obs` and `dones` [nenvs] say where the envs stand."""

    def __init__(self, settings: Collection, obs, dones):
        nsteps, nenvs = settings.nsteps, len(obs)
        self.settings, self.obs, self.dones = settings, obs, np.array(dones, bool)
        self.chain_starts = np.array(dones, bool)   # [nenvs]: obs starts a new episode, or follows a lost life
        self.frames = RolloutObs(nsteps, nenvs, obs.shape[1:], obs.dtype)   # stores 1 frame per step
        self.arrays = {name: np.zeros((nsteps, nenvs), dtype) for name, dtype in
                       (("actions", np.int32), ("rewards", np.float32), ("values", np.float32),
                        ("neglogpacs", np.float32), ("dones", bool))}
        self.episodes = []

    def chosen(self, step: int, actions, values, neglogpacs) -> None:
        """actions [nenvs] int, values [nenvs], neglogpacs [nenvs]: the policy's choice at self.obs."""
        self.frames.add(step, self.obs, self.dones)
        arrays = self.arrays
        arrays["actions"][step], arrays["values"][step], arrays["neglogpacs"][step], arrays["dones"][step] = \
            actions, values, neglogpacs, self.chain_starts

    def stepped(self, step: int, policy, obs, rewards, dones, infos) -> None:
        """The envs' answer to `step`: obs [nenvs, ...] (a new array), rewards [nenvs], dones [nenvs], infos."""
        settings = self.settings
        lives_lost = np.array([bool(info.get("life_lost")) for info in infos])   # [nenvs] bool
        self.chain_starts = np.array(dones, bool) | (lives_lost if settings.life_loss_terminal else False)
        self.arrays["rewards"][step] = rewards + _bootstrap(policy, infos, settings.gamma,
                                                            settings.bootstrap_truncated)
        if settings.life_loss_penalty:   # the learner's reward only: the episodes' returns were counted in the env
            self.arrays["rewards"][step] -= np.float32(settings.life_loss_penalty) * lives_lost
        self.episodes.extend(info["episode"] for info in infos if "episode" in info)
        self.obs, self.dones = obs, np.array(dones, bool)

    def rollout(self, last_values) -> Rollout:
        """last_values [nenvs]: V(self.obs), the observation after the last step."""
        return Rollout(self.frames, last_values=last_values, last_dones=self.chain_starts, episodes=self.episodes,
                       **self.arrays)


def _in_turn(venv, policy, rngs, builder: RolloutBuilder):
    """Every env in one vector step: inference, then the envs step. Yields after each step."""
    for step in range(builder.settings.nsteps):
        actions, values, neglogpacs = policy.step_neglogp(builder.obs, rngs=rngs)
        builder.chosen(step, actions, values, neglogpacs)
        builder.stepped(step, policy, *venv.step(actions))
        yield step


def _double_buffered(venv, policy, rngs, builder: RolloutBuilder):
    """The envs in two halves, A and B, whose steps overlap: A's envs step while the policy chooses for B, and
    B's envs step while the envs' answers are recorded and the policy chooses A's next actions. venv must take
    step_async(actions, envs) / step_wait(envs) (vec_env). Yields after each step (once B's answer is in)."""
    nenvs, nsteps = venv.num_envs, builder.settings.nsteps
    half_a, half_b = np.arange(nenvs // 2), np.arange(nenvs // 2, nenvs)
    obs_a = builder.obs[half_a]   # where A's envs stand: a step ahead of builder.obs once A has answered
    in_flight = set()             # the halves sent a step and not yet read
    try:
        for step in range(nsteps + 1):
            if step < nsteps:
                choice_a = policy.step_neglogp(obs_a, rngs=[rngs[i] for i in half_a])
                venv.step_async(choice_a[0], half_a)
                in_flight.add("A")
            if step:   # the step before ends with B's answer
                answer_b = venv.step_wait(half_b)
                in_flight.discard("B")
                builder.stepped(step - 1, policy, *join_answers(answer_a, answer_b))
                yield step - 1
            if step == nsteps:
                return
            choice_b = policy.step_neglogp(builder.obs[half_b], rngs=[rngs[i] for i in half_b])
            builder.chosen(step, *(np.concatenate(parts) for parts in zip(choice_a, choice_b)))
            venv.step_async(choice_b[0], half_b)
            in_flight.add("B")
            answer_a = venv.step_wait(half_a)
            in_flight.discard("A")
            obs_a = answer_a[0]
    finally:   # stopped mid-way: the answers still to come are read, so the pipes hold nothing stale
        for half in sorted(in_flight):
            venv.step_wait(half_a if half == "A" else half_b)


def join_answers(answer_a, answer_b) -> tuple:
    """Two halves' (obs, rewards, dones, infos) of one step -> the step's, in env order."""
    obs, rewards, dones = (np.concatenate([a, b]) for a, b in zip(answer_a[:3], answer_b[:3]))
    return obs, rewards, dones, list(answer_a[3]) + list(answer_b[3])


def _bootstrap(policy, infos, gamma, enabled) -> np.ndarray:
    """[nenvs] gamma * V(final observation) for episodes cut by the time limit, else 0."""
    extra = np.zeros(len(infos), dtype=np.float32)
    cut = [i for i, info in enumerate(infos) if info.get("truncated")]
    if enabled and cut:
        final_obs = np.stack([infos[i]["final_observation"] for i in cut])
        extra[cut] = gamma * policy.value(final_obs)
    return extra


class Runner(Sampler):
    """The local sampler: collects from every env of the vector env `env` with `model`'s step model.
    settings: rollout.Collection; rngs: one action-noise generator per env (default: action_rngs(0, ...))."""

    def __init__(self, env, model, settings: Collection, rngs=None):
        self.env, self.model, self.settings = env, model, settings
        self.rngs = rngs if rngs is not None else action_rngs(0, range(env.num_envs))
        self.obs = env.reset()                              # [nenvs, 96, 96, 4] uint8
        self.dones = np.zeros(env.num_envs, dtype=bool)     # [nenvs]

    def sample(self, on_step=None, stop=None):
        """-> Rollout of settings.nsteps x nenvs, or None once stop.requested turned true (rollout.Sampler)."""
        collected = collect(self.env, self.model, self.obs, self.dones, self.rngs, self.settings, on_step, stop)
        if collected is None:
            return None
        rollout, self.obs, self.dones = collected
        return rollout


def make_sampler(env, model, rngs, settings: Collection) -> Sampler:
    """The learner's sampler: envs stepped elsewhere (rollout.RemoteEnvs, the Ray backend) make their own; a
    vector env of this machine is stepped by Runner."""
    if isinstance(env, RemoteEnvs):
        return env.sampler(model, rngs, settings)
    return Runner(env, model, settings, rngs)


# ============================================================ GAE: advantages, returns, the training batch

def compute_gae(rewards, values, dones, last_values, last_dones, gamma, lam):
    """Generalised advantage estimation (Schulman et al. 2016), the 2018 scripts' loop.

    rewards, values [nsteps, nenvs] float; dones [nsteps, nenvs] bool: dones[t] is True when observation t
    starts a new episode; last_values [nenvs]: V of the observation after the last step; last_dones [nenvs]:
    its done flag. Returns advantages, returns [nsteps, nenvs] float32 with returns = advantages + values.

    >>> compute_gae(np.array([[1.], [1.]]), np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(1), np.zeros(1), 0.5, 1.0)[0]
    array([[1.5],
           [1. ]], dtype=float32)
    """
    nsteps = len(rewards)
    advantages = np.zeros(np.shape(rewards), dtype=np.float32)
    last_gae = 0.0
    for t in reversed(range(nsteps)):
        if t == nsteps - 1:
            next_nonterminal, next_values = 1.0 - np.asarray(last_dones, np.float32), last_values
        else:
            next_nonterminal, next_values = 1.0 - np.asarray(dones[t + 1], np.float32), values[t + 1]
        # delta_t = r_t + gamma * V(s_t+1) * (1 - done_t+1) - V(s_t)
        delta = rewards[t] + gamma * next_values * next_nonterminal - values[t]
        # A_t = delta_t + gamma * lam * (1 - done_t+1) * A_t+1
        advantages[t] = last_gae = delta + gamma * lam * next_nonterminal * last_gae
    return advantages, (advantages + values).astype(np.float32)


def flatten_env_major(array: np.ndarray) -> np.ndarray:
    """[nsteps, nenvs, ...] -> [nenvs * nsteps, ...], each env's steps together (the seed's sf01)."""
    return array.swapaxes(0, 1).reshape(array.shape[0] * array.shape[1], *array.shape[2:])


def finish(rollout: Rollout, gamma: float, lam: float) -> tuple:
    """Advantages and returns of a Rollout -> the training batch, env-major as the seed's sf01: obs
    (RolloutObs: obs[indices] gives [n, 96, 96, 4] uint8; flat index = env * nsteps + step), actions [n] int32,
    returns [n] f32, values [n] f32, neglogpacs [n] f32, episodes (list of info['episode'] dicts)."""
    _advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.dones, rollout.last_values,
                                       rollout.last_dones, gamma, lam)
    flat = (flatten_env_major(a) for a in (rollout.actions, returns, rollout.values, rollout.neglogpacs))
    return (rollout.obs, *flat, rollout.episodes)


def explained_variance(predicted, target) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is perfect, 0 no better than a constant, < 0 worse."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1.0 - np.var(target - predicted) / variance)


# ============================================================ learn: the training loop

def learn(policy, env, nsteps, total_timesteps, gamma, lam, vf_coef, ent_coef, lr, max_grad_norm, log_interval,
          *, noptepochs=TrainConfig.noptepochs, nminibatches=TrainConfig.nminibatches, seed=TrainConfig.seed,
          lr_schedule=TrainConfig.lr_schedule, truncation_as_terminal=TrainConfig.truncation_as_terminal,
          life_loss_terminal=TrainConfig.life_loss_terminal, life_loss_penalty=TrainConfig.life_loss_penalty,
          optimizer=TrainConfig.optimizer, normalize_advantages=TrainConfig.normalize_advantages,
          policy_loss=TrainConfig.policy_loss, ratio_cap=None, clip_range=None, epsilon=TrainConfig.epsilon,
          max_kl=TrainConfig.max_kl, value_after_kl=TrainConfig.value_after_kl, exact_2018=False,
          keep_checkpoints=TrainConfig.keep_checkpoints, run_dir=None, runs_dir=TrainConfig.runs_dir,
          models_dir=TrainConfig.models_dir, **run_options):
    """The 2018 scripts' entry point: train A2C on the vector env `env` with these hyperparameters (see `train`).
    Keyword defaults are TrainConfig's, so `learn` and `agent.py` cannot drift apart.

    optimizer, normalize_advantages, policy_loss, epsilon, max_kl, value_after_kl, life_loss_terminal,
    life_loss_penalty: see config.TrainConfig; exact_2018 replaces them, the epochs, minibatches, schedule and
    time-limit handling with the 2018 scripts' (config.BEHAVIOUR_2018). ratio_cap, clip_range: the setting of
    the 'capped' and the 'clip' loss (None: TrainConfig's; given for another loss: ConfigError).
    run_options: resume_from, init_weights, progress, extra_config, callback, tf_threads, stream, make_level (see
    `train`).
    """
    keywords = dict(num_envs=env.num_envs, nsteps=nsteps, total_timesteps=total_timesteps, gamma=gamma, lam=lam,
                    vf_coef=vf_coef, ent_coef=ent_coef, lr=lr, lr_schedule=lr_schedule, max_grad_norm=max_grad_norm,
                    noptepochs=noptepochs, nminibatches=nminibatches, truncation_as_terminal=truncation_as_terminal,
                    life_loss_terminal=life_loss_terminal, life_loss_penalty=life_loss_penalty, optimizer=optimizer,
                    normalize_advantages=normalize_advantages, policy_loss=policy_loss, epsilon=epsilon,
                    max_kl=max_kl, value_after_kl=value_after_kl, log_interval=log_interval,
                    keep_checkpoints=keep_checkpoints, seed=seed, runs_dir=runs_dir, models_dir=models_dir,
                    progress=run_options.pop("progress", True), exact_2018=exact_2018)
    keywords.update({name: value for name, value in (("ratio_cap", ratio_cap), ("clip_range", clip_range))
                     if value is not None})
    # with exact_2018 the 2018 behaviour replaces the keywords it covers; every other keyword holds
    config = resolve(keywords, set(keywords) - set(BEHAVIOUR_2018))
    return train(policy, env, config, run_dir=run_dir, **run_options)


def train(policy, env, config: TrainConfig, *, run_dir=None, resume_from=None, init_weights=None, extra_config=None,
          callback=None, tf_threads=0, stream=None, make_level=None) -> str:
    """Train on `env` (a vector env of this machine, or rollout.RemoteEnvs such as ray_backend.RaySampler) with
    `config`: collect a batch (the Runner, or the sampler the remote envs make), compute its advantages, then
    `noptepochs` passes of `nminibatches` shuffled minibatches. A table row and a checkpoint every
    `log_interval` updates. config.num_envs must equal env.num_envs.

    resume_from: a checkpoint folder to continue exactly (weights, optimizer slots, counters, random states,
    episode window); init_weights: a TF checkpoint whose weights start a new run. run_dir: the run folder
    (default runs/<game>-<time>). callback(stats) is called after every update (stats: update, timesteps, fps,
    timings, `episodes`, the episode dicts that ended in it, and the sampler's last_transfer). Returns the run
    folder.
    make_level(game, level, frame_sink=None): builds the envs of the evaluations and videos (default
    env.make_level; tests pass fakes).

    The progress bar counts agent steps as they are collected. Ctrl-C / SIGTERM: the step in hand ends, the last
    update is saved, then RunStopped is raised (its exit_code for the caller). Nothing untrained is ever saved:
    stopped or failed before any update ended, a run saves no checkpoint and removes the run folder it made.
    """
    config = dataclasses.replace(config, num_envs=env.num_envs)
    validate(config)
    run = RunFolder(run_dir or default_run_dir(config.runs_dir, getattr(env, "game", "A2C")), config.models_dir)
    saved_config = dict(config.to_dict(), **(extra_config or {}))
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph, config=session_config(tf_threads)) as sess, sess.as_default():
        learner = Learner(policy, env, config, run, saved_config, make_level)
        learner.start(resume_from, init_weights, stream)
        try:
            learner.loop(callback)
        finally:
            learner.close()
    return run.path


class Learner:
    """The learner's side of one run: the model, its random generators, the counters, the run folder and the
    log. `start` loads what the run starts from, `loop` alternates sampling and training, `close` tidies up."""

    def __init__(self, policy, env, config: TrainConfig, run: RunFolder, saved_config: dict, make_level=None):
        self.env, self.config, self.run, self.saved_config = env, config, run, saved_config
        tf.set_random_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)                   # minibatch shuffles
        self.env_rngs = action_rngs(config.seed, range(env.num_envs))   # one action-noise stream per env
        self.model = Model(policy, env.observation_space, env.action_space, env.num_envs, config.nsteps,
                           config.ent_coef, config.vf_coef, config.max_grad_norm, rng=self.rng,
                           **model_options(config))
        self.batch_size = env.num_envs * config.nsteps
        self.nupdates = config.updates_total
        self.state = TrainingState(rng_state=self.rng.bit_generator.state)   # the last good update
        self.episodes = collections.deque(maxlen=EPISODE_WINDOW)
        self.level_episodes = {}      # level -> deque of its last EPISODE_WINDOW episodes (episodes name their level)
        self.collapse = CollapseWatch(env.action_space.n, config.collapse_warning)
        self.game, self.watched_levels, self.evaluation = self._watching(make_level)
        self.make_level = make_level
        self.saved_update = None      # the update whose weights are on disk: of the last checkpoint this process
                                      # wrote, or of the one it resumed from (None: neither)
        self.new_folder = False
        self._restarts_before = 0     # worker restarts of the run before this process
        self.logger = self.sampler = self.estimate = None
        self.t_start = time.time()

    def _watching(self, make_level) -> tuple:
        """(game, levels of --eval-levels, Evaluation or None): what evaluations and videos play."""
        config = self.config
        if not (config.eval_every or config.video_every):
            return None, [], None
        import env as envs
        game = self.saved_config.get("game") or envs.resolve_game(config.game)
        eval_game, levels = evaluation_levels(config.eval_levels, game)
        evaluation = Evaluation(eval_game, levels, config.eval_episodes, config.seed, config.worker_timeout,
                                make_level) if config.eval_every else None
        return eval_game, levels, evaluation

    # -- start and end
    def start(self, resume_from, init_weights, stream) -> None:
        """Load the checkpoint to start from, then write the run folder (so a bad --resume or --init-weights
        leaves every file as it was); config.json keeps, on resume, keys only the earlier one has."""
        if resume_from:
            state = read_training_state(resume_from)
            self.model.load(os.path.join(resume_from, "model.ckpt"))
            self._restore(state)
            if state.update >= self.nupdates:   # before the run folder changes: a resume would do nothing
                total = self.config.total_timesteps
                raise ConfigError(f"the run {self.run.path!r} has already trained {state.timesteps:,} steps, its "
                                  f"whole --total-timesteps {total:,}: nothing to do. To train further, give a "
                                  f"larger budget: --resume {self.run.path} --total-timesteps {2 * total}")
        elif init_weights:
            self.model.load(resolve_checkpoint(init_weights, self.config.models_dir))
        self.sampler = make_sampler(self.env, self.model, self.env_rngs, Collection.of(self.config))
        self.new_folder = not os.path.exists(self.run.path)   # removed again when no update ends
        self.run.lock()   # before anything in the folder changes: refused while another process trains it
        try:
            self._write_run_folder(resume_from, stream)
        except BaseException:
            self.run.unlock()
            raise
        if resume_from:
            self.logger.print(f"resuming {resume_from}: update {self.state.update}, {self.state.timesteps:,} steps")
        self.estimate = TimeEstimate(self.batch_size, self.nupdates - self.state.update, self.logger.print,
                                     resumed=bool(resume_from))

    def _write_run_folder(self, resume_from, stream) -> None:
        """config.json; on resume from this run, the table and checkpoints after it dropped; the logger."""
        self.run.create(dict(self.run.read_config(), **self.saved_config) if resume_from else self.saved_config)
        if resume_from and os.path.dirname(os.path.abspath(resume_from)) == os.path.abspath(self.run.checkpoints_dir):
            self.run.discard_after(self.state.update)
        self.logger = RunLogger(self.run.path, self.config.total_timesteps, self.state.timesteps,
                                self.config.progress, stream=stream)

    def _restore(self, state: TrainingState) -> None:
        self.state, self.saved_update = state, state.update
        self._restarts_before = state.worker_restarts
        self.rng.bit_generator.state = state.rng_state
        for env_rng, saved_state in zip(self.env_rngs, state.action_rng_states or []):
            env_rng.bit_generator.state = saved_state
        self.episodes.extend(state.episodes)
        for level, episodes in (state.level_episodes or {}).items():
            self.level_episodes[level] = collections.deque(episodes, maxlen=EPISODE_WINDOW)
        self.t_start = time.time() - state.elapsed

    def close(self) -> None:
        if self.logger is None:   # start() failed before the folder was written, and let go of the lock
            return
        self.logger.close()
        self.run.unlock()
        if self.new_folder and self.saved_update is None:   # nothing to resume from: leave no run folder behind
            removed = self.run.remove_if_unused()
            why = "no update ended" if self.state.update == 0 else "no checkpoint could be written"
            self.logger.print(f"{'removed' if removed else 'kept'} the run folder {self.run.path} ({why})")

    # -- the loop
    def loop(self, callback=None) -> None:
        """Updates until the step budget is spent or a signal asks to stop; then the last update is saved."""
        stop = StopOnSignal()
        try:
            with stop:
                while self.state.update < self.nupdates and not stop.requested:
                    if not self.update(stop, callback):
                        break
            self._finish(stop.requested)
        except NonFiniteError as error:
            raise NonFiniteError(f"{error} at update {self.state.update + 1}; nothing was saved from it. The last "
                                 f"good checkpoint is {self.run.latest() or 'none (no update was saved yet)'}: lower "
                                 "--lr or --max-grad-norm and resume from it") from None
        except WorkerError as error:
            if error.details:   # the worker's traceback goes to the log; the error itself stays one line
                self.logger.print(f"{error}; the worker's traceback:\n{error.details.rstrip()}")
            if self.saved_update != self.state.update and self.state.update > 0:
                self.logger.print(f"env worker failed; checkpoint of update {self.state.update}: {self.save()}")
            raise

    def _steps_collected(self, vector_steps: int) -> None:
        """`vector_steps` more steps of every env were collected: the bar and the time estimate count them."""
        self.logger.advance(vector_steps * self.env.num_envs)
        self.estimate.steps_done(vector_steps * self.env.num_envs)

    def update(self, stop: StopOnSignal, callback=None) -> bool:
        """Sample one batch, train on it, log and save as configured. -> False when `stop` ended the sampling."""
        config = self.config
        current_lr = learning_rate(config.lr, config.lr_schedule, self.state.timesteps, config.total_timesteps)
        t_update = time.time()
        rollout = self.sampler.sample(self._steps_collected, stop)
        if rollout is None:
            return False
        obs, actions, returns, values, neglogpacs, new_episodes = finish(rollout, config.gamma, config.lam)
        t_sampled = time.time()
        stats = train_epochs(self.model, (obs, actions, returns, values, neglogpacs), self.rng, config.noptepochs,
                             config.nminibatches, current_lr, config.max_kl, config.value_after_kl)
        self.model.check_weights()
        t_trained = time.time()
        self.episodes.extend(new_episodes)
        for episode in new_episodes:
            if "level" in episode:
                window = self.level_episodes.setdefault(episode["level"], collections.deque(maxlen=EPISODE_WINDOW))
                window.append(episode)
        self.state = self.snapshot(self.state.update + 1, self.state.timesteps + self.batch_size)
        fps = self.batch_size / (t_trained - t_update)
        self.logger.advance(0, fps, self.state.mean_return())   # the steps were counted as collected
        self.estimate.update_done(t_trained - t_update)
        if callback:
            callback(dict(update=self.state.update, timesteps=self.state.timesteps, fps=fps,
                          t_sample=t_sampled - t_update, t_train=t_trained - t_sampled, t_update=time.time() - t_update,
                          minibatch_steps=stats.minibatch_steps, episodes=list(new_episodes),
                          **self.sampler.last_transfer))
        update = self.state.update
        evaluate = self.evaluation is not None and (update % config.eval_every == 0 or update == self.nupdates)
        if update % config.log_interval == 0 or update == 1 or update == self.nupdates or evaluate:
            row = table_row(self.state, fps, stats, values, returns, current_lr)
            figures = training_level_figures(self.level_episodes)
            eval_score = self._evaluate(row, figures) if evaluate else None
            if self.evaluation is not None and not evaluate:   # the columns stay, empty in this row
                row.update(dict.fromkeys(self.evaluation.columns(), float("nan")))
            self.logger.log_row(row, [e["r"] for e in self.episodes], [e["l"] for e in self.episodes], figures)
            self.logger.print(f"checkpoint: {self.save(eval_score)}")
        if config.video_every and update % config.video_every == 0:
            self._record_video(update)
        warning = self.collapse.check(float(stats.losses[2]))
        if warning:
            self.logger.warn("warnings/policy_collapse", warning, self.state.timesteps)
        return True

    def _evaluate(self, row: dict, figures: dict) -> float:
        """Score the current weights (Evaluation): its columns into the table row, its per-level figures into
        `figures`. -> the mean evaluation return, which decides the best checkpoint."""
        scores = self.evaluation.run(self.model.step_model)
        for column in self.evaluation.columns():
            row[column] = scores.pop(column)
        figures.update(scores)
        self.logger.print(f"evaluation: mean return {row['eval_return_mean']:.4g} over {len(self.evaluation.jobs)} "
                          f"episodes of {', '.join(self.evaluation.levels)} ({row['eval_seconds']:.1f} s)")
        return row["eval_return_mean"]

    def _record_video(self, update: int) -> None:
        """One episode of the current policy (sampled actions) -> runs/NAME/videos/update_N.gif and TensorBoard."""
        path = os.path.join(self.run.path, "videos", f"update_{update:06d}.gif")
        level = self.watched_levels[0]
        episode = record_video(self.model.step_model, self.game, level, path, self.config.seed,
                               self.config.worker_timeout, self.make_level)
        self.logger.animation("videos/policy", path, self.state.timesteps)
        self.logger.print(f"video: {path} ({self.game}/{level}, score {episode['r']:.4g}, {episode['l']} steps)")

    def _finish(self, signal_name) -> None:
        """After the loop: save what is not saved yet; after a signal, say how to go on and raise RunStopped."""
        if signal_name and self.state.update == 0:   # nothing trained: nothing saved, models/latest kept
            self.logger.print(f"{signal_name} received before the first update ended: nothing was saved")
            raise RunStopped(signal_name)
        if signal_name:
            path = self.save() if self.saved_update != self.state.update else self.run.latest()
            self.logger.print(f"{signal_name} received: stopped after update {self.state.update}, "
                              f"checkpoint {path}. Continue with: python agent.py --resume {self.run.path}")
            raise RunStopped(signal_name)
        if self.saved_update != self.state.update:
            self.logger.print(f"checkpoint: {self.save()}")

    # -- state
    def snapshot(self, update: int, timesteps: int) -> TrainingState:
        """The training state after `update` updates and `timesteps` steps, as a checkpoint stores it."""
        return TrainingState(update, timesteps, list(self.episodes), self.rng.bit_generator.state,
                             time.time() - self.t_start, self._restarts_before + getattr(self.env, "restarts", 0),
                             [env_rng.bit_generator.state for env_rng in self.env_rngs],
                             {level: list(episodes) for level, episodes in self.level_episodes.items()})

    def save(self, eval_score=None) -> str:
        """Checkpoint the last update. The best checkpoint is the one of the best mean training return, or with
        --eval-every the best evaluated one (eval_score: its mean evaluation return; None: not evaluated)."""
        training = self.state
        score, kind = ((training.mean_return(), "ep_return_mean") if self.evaluation is None
                       else (eval_score, "eval_return_mean"))
        path = self.run.save(training.update, self.model.save, {"training": dataclasses.asdict(training),
                                                                 "config": self.saved_config},
                             self.config.keep_checkpoints, score=score, score_kind=kind)
        self.saved_update = training.update
        return path


class UpdateStats(typing.NamedTuple):
    """What one update's optimizer steps measured (train_epochs)."""
    losses: tuple          # mean (policy_loss, value_loss, policy_entropy) over the policy's steps
    minibatch_steps: int   # the policy's steps: passes x minibatches, fewer when --max-kl ended the update
    approx_kl: float       # mean KL(pi_old || pi) measured on each of those minibatches before its step
    clip_fraction: float   # --policy-loss clip: the mean share of samples it clipped; None otherwise


def train_epochs(model, batch, rng, noptepochs, nminibatches, lr, max_kl=0.0, value_after_kl=False) -> UpdateStats:
    """`noptepochs` passes over the batch in `nminibatches` shuffled minibatches, as the 2018 scripts; with
    max_kl > 0 the policy's steps end after the first step whose minibatch shows KL(pi_old || pi) above max_kl:
    the update ends there, or with `value_after_kl` its remaining minibatches train the value alone.
    batch: (obs [n, 96, 96, 4] uint8 (indexable), actions [n], returns [n], values [n], neglogpacs [n])."""
    obs, actions, returns, values, neglogpacs = batch
    minibatch_size = len(actions) // nminibatches
    # shuffled afresh each update from the saved generator alone, so that a resumed run draws the same
    # minibatches (a permutation carried over from earlier updates would not be in a checkpoint)
    indices = np.arange(len(actions))
    losses, kls, clipped, policy_done = [], [], [], False
    for _ in range(noptepochs):
        rng.shuffle(indices)
        for start in range(0, len(actions), minibatch_size):
            mb_inds = indices[start:start + minibatch_size]
            minibatch = (obs[mb_inds], actions[mb_inds], returns[mb_inds], values[mb_inds], lr, neglogpacs[mb_inds])
            if policy_done:
                model.train(*minibatch, value_only=True)
                continue
            losses.append(model.train(*minibatch))
            kls.append(model.last_approx_kl)
            clipped.append(model.last_clip_fraction)
            if max_kl and model.last_approx_kl > max_kl:
                if not value_after_kl:
                    return _update_stats(losses, kls, clipped)
                policy_done = True
    return _update_stats(losses, kls, clipped)


def _update_stats(losses: list, kls: list, clipped: list) -> UpdateStats:
    clip_fraction = None if clipped[0] is None else float(np.mean(clipped))
    return UpdateStats(tuple(np.mean(losses, axis=0)), len(losses), float(np.mean(kls)), clip_fraction)


def learning_rate(lr: float, schedule: str, timesteps: int, total_timesteps: int) -> float:
    """The learning rate for the next update: constant, or linear from lr down to 0 at total_timesteps."""
    if schedule == "linear":
        return lr * max(0.0, 1.0 - timesteps / total_timesteps)
    return lr


def table_row(training: TrainingState, fps, stats: UpdateStats, values, returns, lr) -> dict:
    """One row of the training table: the 2018 columns, then episode statistics, learning rate, restarts, the
    optimizer steps of the last update (fewer than passes x minibatches when --max-kl ended it early), its KL
    and, with the clip, its clipped fraction. values, returns [nenvs * nsteps] of the last batch."""
    policy_loss, value_loss, policy_entropy = (float(x) for x in stats.losses)
    mean_return = training.mean_return()
    lengths = [e["l"] for e in training.episodes]
    row = {"nupdates": training.update, "total_timesteps": training.timesteps, "fps": int(fps),
           "policy_loss": policy_loss, "policy_entropy": policy_entropy, "value_loss": value_loss,
           "explained_variance": explained_variance(values, returns),
           "time_elapsed": round(training.elapsed, 1),
           "ep_return_mean": mean_return if mean_return is not None else float("nan"),
           "ep_length_mean": float(np.mean(lengths)) if lengths else float("nan"),
           "learning_rate": lr, "worker_restarts": training.worker_restarts,
           "minibatch_steps": stats.minibatch_steps, "approx_kl": stats.approx_kl}
    if stats.clip_fraction is not None:
        row["clip_fraction"] = stats.clip_fraction
    return row


def model_options(config: TrainConfig) -> dict:
    """The Model keywords (optimizer and objective) that `config` chooses."""
    return dict(optimizer=config.optimizer, normalize_advantages=config.normalize_advantages,
                policy_loss=config.policy_loss, ratio_cap=config.ratio_cap, clip_range=config.clip_range,
                epsilon=config.epsilon, value_only_steps=config.value_after_kl)


@dataclasses.dataclass
class TrainingState:
    """What a checkpoint holds besides the TF variables, so a resumed run continues exactly."""
    update: int = 0
    timesteps: int = 0
    episodes: list = dataclasses.field(default_factory=list)   # the last EPISODE_WINDOW episode dicts
    rng_state: dict = None                                      # numpy bit generator state
    elapsed: float = 0.0                                        # training seconds before this process
    worker_restarts: int = 0
    action_rng_states: list = None                              # each env's action-noise generator state
    level_episodes: dict = None                                 # level -> its last EPISODE_WINDOW episode dicts

    def mean_return(self):
        return float(np.mean([e["r"] for e in self.episodes])) if self.episodes else None


def read_training_state(checkpoint_dir: str) -> TrainingState:
    """The training state of a checkpoint folder; CheckpointError, one line that says what to do, when this
    version cannot continue from it (fields it does not know, or values that do not fit)."""
    training = load_state(checkpoint_dir).get("training")
    known = {f.name for f in dataclasses.fields(TrainingState)}
    unknown = sorted(set(training) - known) if isinstance(training, dict) else []
    if unknown:
        raise CheckpointError(f"the checkpoint {checkpoint_dir!r} holds training state this version does not know "
                              f"({', '.join(unknown)}): it was written by another version of sonic-a2c; resume it "
                              "with that version, or start a new run from its weights with --init-weights")
    try:
        state = TrainingState(**training)
        np.random.default_rng().bit_generator.state = state.rng_state
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"the checkpoint {checkpoint_dir!r} is corrupt (state.json, training state: {error}); "
                              "resume from an earlier one in the same folder") from None
    return state


def check_resumable(checkpoint_dir: str, run_dir: str) -> None:
    """Raise CheckpointError now, before env workers start, for what a resume reads and would fail on (with a
    traceback, after rewriting the run's config.json): the training state, config.json, progress.csv."""
    from logger import read_progress_table
    read_training_state(checkpoint_dir)
    RunFolder(run_dir).read_config()
    read_progress_table(os.path.join(run_dir, "progress.csv"))


class StopOnSignal:
    """Ctrl-C / SIGTERM set `requested` (the loop finishes its step and saves); a second one interrupts."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def _handle(self, signum, _frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class RunStopped(KeyboardInterrupt):
    """Raised by learn() once a Ctrl-C (SIGINT) or SIGTERM stopped it and what there was to save is saved.
    exit_code follows the shells' convention for a process ended by that signal: 130 for SIGINT, 143 for SIGTERM."""

    def __init__(self, signal_name: str):
        super().__init__(f"{signal_name} received")
        self.signal_name = signal_name
        self.exit_code = 128 + signal.Signals[signal_name].value


# ============================================================ play: watching a checkpoint

def play(policy, env, load_path, episodes=1, deterministic=False, stream=None, seed=0):
    """Load a checkpoint and play `episodes` episodes on the vector env `env` (one env). Each episode's raw
    score, length and (Sonic) progress is printed; the list of episode dicts is returned. A window shows the
    game when `env` was made with render_mode='human'."""
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph, config=session_config()) as sess, sess.as_default():
        model = Model(policy, env.observation_space, env.action_space, env.num_envs, 1, 0.0, 0.0, None,
                      rng=np.random.default_rng(seed))
        model.load(load_path)
        finished = []
        obs = env.reset()
        while len(finished) < episodes:
            actions = model.step_model.select_action(obs, deterministic=deterministic)
            obs, _rewards, _dones, infos = env.step(actions)
            for info in infos:
                if "episode" in info:
                    episode = info["episode"]
                    finished.append(episode)
                    progress = f", level progress {episode['progress']:.0%}" if "progress" in episode else ""
                    print(f"episode {len(finished)}: score {episode['r']:.0f}, {episode['l']} steps{progress}",
                          file=stream, flush=True)
        return finished[:episodes]
