"""A2C: the Model (graph, losses, train op), GAE, the Runner (experience), `learn` (the loop) and `play`.

TF1 graph code through `tensorflow.compat.v1` with v2 behaviour disabled, as the 2018 scripts were written.
"""
import collections
import dataclasses
import os
import signal
import threading
import time

import numpy as np
import tensorflow.compat.v1 as tf

from checkpoint import CheckpointError, RunFolder, default_run_dir, load_state, resolve_checkpoint
from config import TrainConfig, validate
from logger import RunLogger
from rollout import RolloutObs
from vec_env import WorkerError

tf.get_logger().setLevel("ERROR")   # TF1-API deprecation notices are expected here
tf.disable_v2_behavior()

EPISODE_WINDOW = 100   # episodes averaged in the table's ep_return_mean / ep_length_mean


class NonFiniteError(FloatingPointError):
    """A loss, gradient or weight became NaN or infinite."""


def session_config(threads: int = 0) -> "tf.ConfigProto":
    """Session options: GPU memory grows as needed; `threads` > 0 caps TF's CPU thread pools."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=min(threads, 1) if threads else 0)
    config.gpu_options.allow_growth = True
    return config


# ----------------------------------------------------------------------------- the model

class Model:
    """A step model (sampling) and a train model sharing one set of weights, in the default session.

    | placeholder  | shape | meaning                     |
    | actions_     | [n]   | actions taken, int32        |
    | advantages_  | [n]   | returns - values            |
    | rewards_     | [n]   | returns (value targets)     |
    | lr_          | []    | learning rate of this call  |
    """

    def __init__(self, policy, ob_space, action_space, nenvs, nsteps, ent_coef, vf_coef, max_grad_norm, rng=None):
        self.sess = sess = tf.get_default_session()
        self.actions_ = tf.placeholder(tf.int32, [None], name="actions")
        self.advantages_ = tf.placeholder(tf.float32, [None], name="advantages")
        self.rewards_ = tf.placeholder(tf.float32, [None], name="returns")
        self.lr_ = tf.placeholder(tf.float32, [], name="learning_rate")
        self.step_model = policy(sess, ob_space, action_space, nenvs, 1, reuse=False, rng=rng)
        self.train_model = train_model = policy(sess, ob_space, action_space, nenvs * nsteps, nsteps, reuse=True,
                                                rng=rng)
        neglogpac = train_model.pd.neglogp(self.actions_)
        # L_pg = mean(A * -log pi(a|s))
        self.pg_loss = tf.reduce_mean(self.advantages_ * neglogpac)
        # L_v = mean((R - V(s))^2) / 2
        self.vf_loss = tf.reduce_mean(tf.square(train_model.vf - self.rewards_)) / 2.0
        # H = mean entropy of pi(.|s)
        self.entropy = tf.reduce_mean(train_model.pd.entropy())
        # L = L_pg - ent_coef * H + vf_coef * L_v
        self.loss = self.pg_loss - self.entropy * ent_coef + self.vf_loss * vf_coef
        self.params = tf.trainable_variables("model")
        grads = tf.gradients(self.loss, self.params)
        if max_grad_norm is not None:
            grads, self.grad_norm = tf.clip_by_global_norm(grads, max_grad_norm)
        else:
            self.grad_norm = tf.global_norm(grads)
        trainer = tf.train.RMSPropOptimizer(learning_rate=self.lr_, decay=0.99, epsilon=1e-5)
        self._train = trainer.apply_gradients(list(zip(grads, self.params)))
        self._weights_finite = [tf.reduce_all(tf.is_finite(p)) for p in self.params]
        self.saver = tf.train.Saver(tf.global_variables(), max_to_keep=None)
        self.step = self.step_model.step
        self.value = self.step_model.value
        sess.run(tf.global_variables_initializer())

    def train(self, states_in, actions, returns, values, lr):
        """One RMSProp step on a minibatch.
        states_in [n, 96, 96, 4] uint8, actions [n] int32, returns [n] f32, values [n] f32
        -> (policy_loss, value_loss, policy_entropy). Raises NonFiniteError before returning bad numbers."""
        advantages = returns - values
        feed = {self.train_model.inputs_: states_in, self.actions_: actions, self.advantages_: advantages,
                self.rewards_: returns, self.lr_: lr}
        policy_loss, value_loss, policy_entropy, grad_norm, _ = self.sess.run(
            [self.pg_loss, self.vf_loss, self.entropy, self.grad_norm, self._train], feed)
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
        """Write every variable (weights and RMSProp slots) as a TF checkpoint at prefix `save_path`."""
        os.makedirs(os.path.dirname(os.path.abspath(save_path)), exist_ok=True)
        self.saver.save(self.sess, save_path, write_meta_graph=False, write_state=False)

    def load(self, load_path: str) -> bool:
        """Restore from a TF checkpoint prefix. A weights-only checkpoint (as some 2018 runs saved) restores the
        weights and leaves the RMSProp slots fresh. Returns True when the optimiser state was restored too."""
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


# ----------------------------------------------------------------------------- advantages

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


def explained_variance(predicted, target) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is perfect, 0 no better than a constant, < 0 worse."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1.0 - np.var(target - predicted) / variance)


# ----------------------------------------------------------------------------- experience

def flatten_env_major(array: np.ndarray) -> np.ndarray:
    """[nsteps, nenvs, ...] -> [nenvs * nsteps, ...], each env's steps together (the seed's sf01)."""
    return array.swapaxes(0, 1).reshape(array.shape[0] * array.shape[1], *array.shape[2:])


class Runner:
    """Collects `nsteps` from every env with the step model and computes returns with GAE.

    With `bootstrap_truncated` (default), an episode cut by the time limit is not treated as an end: its last
    reward gets gamma * V(final observation) added, as if the episode had gone on.
    """

    def __init__(self, env, model, nsteps, total_timesteps, gamma, lam, bootstrap_truncated=True):
        self.env, self.model, self.nsteps = env, model, nsteps
        self.total_timesteps, self.gamma, self.lam = total_timesteps, gamma, lam
        self.bootstrap_truncated = bootstrap_truncated
        self.obs = env.reset()                              # [nenvs, 96, 96, 4] uint8
        self.dones = np.zeros(env.num_envs, dtype=bool)     # [nenvs]

    def run(self, should_stop=lambda: False):
        """-> obs (RolloutObs: obs[indices] gives [n, 96, 96, 4] uint8; flat index = env * nsteps + step),
        actions [nenvs*nsteps] int32, returns [..] f32, values [..] f32, episodes (list of info['episode']
        dicts), all env-major as the seed's sf01. Returns None when should_stop() turned True mid-way."""
        nenvs = self.env.num_envs
        mb_obs = RolloutObs(self.nsteps, nenvs, self.obs.shape[1:], self.obs.dtype)   # stores 1 frame per step
        mb_actions = np.zeros((self.nsteps, nenvs), dtype=np.int32)
        mb_rewards = np.zeros((self.nsteps, nenvs), dtype=np.float32)
        mb_values = np.zeros((self.nsteps, nenvs), dtype=np.float32)
        mb_dones = np.zeros((self.nsteps, nenvs), dtype=bool)
        episodes = []
        for step in range(self.nsteps):
            actions, values = self.model.step(self.obs)
            mb_obs.add(step, self.obs, self.dones)
            mb_actions[step], mb_values[step], mb_dones[step] = actions, values, self.dones
            self.obs, rewards, self.dones, infos = self.env.step(actions)
            mb_rewards[step] = rewards + self._bootstrap(infos)
            episodes.extend(info["episode"] for info in infos if "episode" in info)
            if should_stop():
                return None
        last_values = self.model.value(self.obs)
        advantages, returns = compute_gae(mb_rewards, mb_values, mb_dones, last_values, self.dones,
                                          self.gamma, self.lam)
        flat = (flatten_env_major(a) for a in (mb_actions, returns, mb_values))
        return (mb_obs, *flat, episodes)

    def _bootstrap(self, infos) -> np.ndarray:
        """[nenvs] gamma * V(final observation) for episodes cut by the time limit, else 0."""
        extra = np.zeros(len(infos), dtype=np.float32)
        cut = [i for i, info in enumerate(infos) if info.get("truncated")]
        if self.bootstrap_truncated and cut:
            final_obs = np.stack([infos[i]["final_observation"] for i in cut])
            extra[cut] = self.gamma * self.model.value(final_obs)
        return extra


# ----------------------------------------------------------------------------- training state

@dataclasses.dataclass
class TrainingState:
    """What a checkpoint holds besides the TF variables, so a resumed run continues exactly."""
    update: int = 0
    timesteps: int = 0
    episodes: list = dataclasses.field(default_factory=list)   # the last EPISODE_WINDOW episode dicts
    rng_state: dict = None                                      # numpy bit generator state
    elapsed: float = 0.0                                        # training seconds before this process
    worker_restarts: int = 0

    def mean_return(self):
        return float(np.mean([e["r"] for e in self.episodes])) if self.episodes else None


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


def learning_rate(lr: float, schedule: str, timesteps: int, total_timesteps: int) -> float:
    """The learning rate for the next update: constant, or linear from lr down to 0 at total_timesteps."""
    if schedule == "linear":
        return lr * max(0.0, 1.0 - timesteps / total_timesteps)
    return lr


def train_epochs(model, batch, rng, noptepochs, nminibatches, lr) -> np.ndarray:
    """`noptepochs` passes over the batch in `nminibatches` shuffled minibatches, as the 2018 scripts.
    batch: (obs [n, 96, 96, 4] uint8 (indexable), actions [n], returns [n], values [n]).
    -> mean (policy_loss, value_loss, policy_entropy) over the minibatches."""
    obs, actions, returns, values = batch
    minibatch_size = len(actions) // nminibatches
    # shuffled afresh each update from the saved generator alone, so that a resumed run draws the same
    # minibatches (a permutation carried over from earlier updates would not be in a checkpoint)
    indices = np.arange(len(actions))
    losses = []
    for _ in range(noptepochs):
        rng.shuffle(indices)
        for start in range(0, len(actions), minibatch_size):
            mb_inds = indices[start:start + minibatch_size]
            losses.append(model.train(obs[mb_inds], actions[mb_inds], returns[mb_inds], values[mb_inds], lr))
    return np.mean(losses, axis=0)


def table_row(training: "TrainingState", fps, losses, values, returns, lr) -> dict:
    """One row of the training table: the 2018 columns, then episode statistics, learning rate, restarts.
    losses: (policy_loss, value_loss, policy_entropy); values, returns [nenvs * nsteps] of the last batch."""
    policy_loss, value_loss, policy_entropy = (float(x) for x in losses)
    mean_return = training.mean_return()
    lengths = [e["l"] for e in training.episodes]
    return {"nupdates": training.update, "total_timesteps": training.timesteps, "fps": int(fps),
            "policy_loss": policy_loss, "policy_entropy": policy_entropy, "value_loss": value_loss,
            "explained_variance": explained_variance(values, returns),
            "time_elapsed": round(training.elapsed, 1),
            "ep_return_mean": mean_return if mean_return is not None else float("nan"),
            "ep_length_mean": float(np.mean(lengths)) if lengths else float("nan"),
            "learning_rate": lr, "worker_restarts": training.worker_restarts}


# ----------------------------------------------------------------------------- the loop

def learn(policy, env, nsteps, total_timesteps, gamma, lam, vf_coef, ent_coef, lr, max_grad_norm, log_interval,
          *, noptepochs=4, nminibatches=8, seed=0, lr_schedule="constant", truncation_as_terminal=False,
          keep_checkpoints=5, run_dir=None, runs_dir="runs", models_dir="models", resume_from=None,
          init_weights=None, progress=True, extra_config=None, callback=None, tf_threads=0, stream=None):
    """Train A2C on the vector env `env`: collect a batch, then `noptepochs` passes of `nminibatches` shuffled
    minibatches, as the 2018 scripts. A table row and a checkpoint every `log_interval` updates.

    resume_from: a checkpoint folder to continue exactly (weights, RMSProp slots, counters, random state,
    episode window); init_weights: a TF checkpoint whose weights start a new run. run_dir: the run folder
    (default runs/<game>-<time>). callback(stats) is called after every update. Returns the run folder.
    """
    config = TrainConfig(num_envs=env.num_envs, nsteps=nsteps, total_timesteps=total_timesteps, gamma=gamma, lam=lam,
                         vf_coef=vf_coef, ent_coef=ent_coef, lr=lr, lr_schedule=lr_schedule,
                         max_grad_norm=max_grad_norm, noptepochs=noptepochs, nminibatches=nminibatches,
                         truncation_as_terminal=truncation_as_terminal, log_interval=log_interval,
                         keep_checkpoints=keep_checkpoints, seed=seed, runs_dir=runs_dir, models_dir=models_dir)
    validate(config)
    batch_size = env.num_envs * nsteps
    nupdates = total_timesteps // batch_size
    run = RunFolder(run_dir or default_run_dir(runs_dir, getattr(env, "game", "A2C")), models_dir)
    saved_config = dict(config.to_dict(), **(extra_config or {}))
    # config.json records the settings in force (on resume, keys only the earlier config.json has are kept);
    # the folder is written only once the checkpoint to start from has loaded, so a bad --resume or
    # --init-weights leaves every file as it was
    run_config = dict(run.read_config(), **saved_config) if resume_from else saved_config

    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph, config=session_config(tf_threads)) as sess, sess.as_default():
        tf.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        model = Model(policy, env.observation_space, env.action_space, env.num_envs, nsteps,
                      ent_coef, vf_coef, max_grad_norm, rng=rng)
        state = TrainingState(rng_state=rng.bit_generator.state)
        if resume_from:
            model.load(os.path.join(resume_from, "model.ckpt"))
            state = TrainingState(**load_state(resume_from)["training"])
            rng.bit_generator.state = state.rng_state
        elif init_weights:
            model.load(resolve_checkpoint(init_weights, models_dir))
        run.create(run_config)
        if resume_from and os.path.dirname(os.path.abspath(resume_from)) == os.path.abspath(run.checkpoints_dir):
            run.discard_after(state.update)
        runner = Runner(env, model, nsteps, total_timesteps, gamma, lam, bootstrap_truncated=not truncation_as_terminal)
        logger = RunLogger(run.path, total_timesteps, state.timesteps, progress, stream=stream)
        episodes = collections.deque(state.episodes, maxlen=EPISODE_WINDOW)
        saved_update = state.update if resume_from else None
        t_start = time.time() - state.elapsed

        def snapshot() -> TrainingState:
            return TrainingState(update, timesteps, list(episodes), rng.bit_generator.state,
                                 time.time() - t_start, getattr(env, "restarts", 0) + restarts_before)

        def save(training: TrainingState) -> str:
            nonlocal saved_update
            path = run.save(training.update, model.save, {"training": dataclasses.asdict(training),
                                                          "config": saved_config}, keep_checkpoints,
                            score=training.mean_return())
            saved_update = training.update
            return path

        update, timesteps = state.update, state.timesteps
        restarts_before = state.worker_restarts
        last_good = state
        stop = StopOnSignal()
        try:
            with stop:
                while update < nupdates and not stop.requested:
                    current_lr = learning_rate(lr, lr_schedule, timesteps, total_timesteps)
                    t_update = time.time()
                    batch = runner.run(should_stop=lambda: stop.requested)
                    if batch is None:
                        break
                    obs, actions, returns, values, new_episodes = batch
                    t_sampled = time.time()
                    losses = train_epochs(model, (obs, actions, returns, values), rng, noptepochs,
                                          nminibatches, current_lr)
                    model.check_weights()
                    t_trained = time.time()
                    update, timesteps = update + 1, timesteps + batch_size
                    episodes.extend(new_episodes)
                    last_good = snapshot()
                    fps = batch_size / (t_trained - t_update)
                    mean_return = last_good.mean_return()
                    logger.advance(batch_size, fps, mean_return if mean_return is not None else float("nan"))
                    if callback:
                        callback(dict(update=update, timesteps=timesteps, fps=fps, t_sample=t_sampled - t_update,
                                      t_train=t_trained - t_sampled, t_update=time.time() - t_update))
                    if update % log_interval == 0 or update == 1 or update == nupdates:
                        row = table_row(last_good, fps, losses, values, returns, current_lr)
                        logger.log_row(row, [e["r"] for e in episodes], [e["l"] for e in episodes])
                        logger.print(f"checkpoint: {save(last_good)}")
            if stop.requested:
                path = save(last_good) if saved_update != last_good.update else run.latest()
                logger.print(f"{stop.requested} received: stopped after update {last_good.update}, "
                             f"checkpoint {path}. Continue with: python agent.py --resume {run.path}")
            elif saved_update != last_good.update:
                logger.print(f"checkpoint: {save(last_good)}")
        except NonFiniteError as error:
            raise NonFiniteError(f"{error} at update {update + 1}; nothing was saved from it. The last good "
                                 f"checkpoint is {run.latest() or 'none (no update was saved yet)'}: lower --lr or "
                                 "--max-grad-norm and resume from it") from None
        except WorkerError as error:
            if error.details:   # the worker's traceback goes to the log; the error itself stays one line
                logger.print(f"{error}; the worker's traceback:\n{error.details.rstrip()}")
            if saved_update != last_good.update:
                logger.print(f"env worker failed; checkpoint of update {last_good.update}: {save(last_good)}")
            raise
        finally:
            logger.close()
    return run.path


# ----------------------------------------------------------------------------- watching

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
