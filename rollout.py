"""What a sampler collects and how: `Rollout` (one update's experience, before advantages), its observation
store `RolloutObs`, the collection settings `Collection`, and the interface of the samplers (`Sampler`, and
`RemoteEnvs` for envs stepped elsewhere, which make their own).

Rollout storage for observations that are stacks of the last k frames.

A stacked observation [H, W, k] repeats k-1 frames of the one before it, so a rollout stored as stacks holds
every frame k times (the seed's buffer at 13 envs x 2048 steps: about 1 GiB of uint8). `RolloutObs` keeps the
newest frame of each step, the stacks the rollout started from and the episode starts, and rebuilds stacks
only for the minibatch being trained on. It checks at every step that the env really stacks frames that way
(env.FrameStack: shift by one, all slots equal to the first frame after a reset); the first time an
observation breaks that rule it falls back to storing whole observations, so any env gives exact results.
"""
import abc
import dataclasses

import numpy as np


class RolloutObs:
    """Observations of one rollout, added step by step, read back as a flat env-major batch.

    add(step, obs [nenvs, H, W, k] uint8, starts [nenvs] bool: obs starts a new episode)
    len(self) = nenvs * nsteps; self[indices [n]] -> [n, H, W, k] with flat index = env * nsteps + step.
    """

    def __init__(self, nsteps: int, nenvs: int, obs_shape: tuple, dtype=np.uint8):
        self.nsteps, self.nenvs = nsteps, nenvs
        self.obs_shape, self.dtype = tuple(obs_shape), dtype
        self.k = self.obs_shape[-1]
        self.stackable = len(self.obs_shape) == 3 and self.k > 1
        self.full = None if self.stackable else np.zeros((nsteps, nenvs, *self.obs_shape), dtype)
        if self.stackable:
            self.first = np.zeros((nenvs, *self.obs_shape), dtype)               # [nenvs, H, W, k]
            self.frames = np.zeros((nenvs, nsteps, *self.obs_shape[:-1]), dtype)  # [nenvs, nsteps, H, W]
        self.starts = np.zeros((nsteps, nenvs), dtype=bool)                       # [nsteps, nenvs]
        self._previous = None

    @property
    def shape(self) -> tuple:
        return (self.nenvs * self.nsteps, *self.obs_shape)

    def __len__(self) -> int:
        return self.nenvs * self.nsteps

    def add(self, step: int, obs: np.ndarray, starts: np.ndarray) -> None:
        self.starts[step] = starts
        if self.full is None and step > 0 and not self._follows_stack(self._previous, obs, starts):
            self._switch_to_full(step)
        if self.full is not None:
            self.full[step] = obs
        else:
            if step == 0:
                self.first[:] = obs
            self.frames[:, step] = obs[..., -1]
        self._previous = obs

    @staticmethod
    def _follows_stack(previous, obs, starts) -> bool:
        """obs [nenvs, H, W, k] is previous shifted by one frame, or (episode start) one frame repeated."""
        go_on = ~starts
        if go_on.any() and not np.array_equal(obs[go_on][..., :-1], previous[go_on][..., 1:]):
            return False
        if starts.any():
            fresh = obs[starts]
            return bool((fresh == fresh[..., -1:]).all())
        return True

    def _switch_to_full(self, filled: int) -> None:
        """Rebuild the first `filled` steps as whole observations and store whole ones from now on."""
        full = np.zeros((self.nsteps, self.nenvs, *self.obs_shape), self.dtype)
        if filled:
            steps = np.arange(filled)
            for env in range(self.nenvs):
                full[:filled, env] = self[env * self.nsteps + steps]
        self.full = full
        self.first = self.frames = None

    def __getitem__(self, indices) -> np.ndarray:  # indices [n] int -> [n, H, W, k]
        indices = np.asarray(indices)
        envs, steps = np.divmod(indices, self.nsteps)
        if self.full is not None:
            return self.full[steps, envs]
        out = np.empty((len(indices), *self.obs_shape), self.dtype)
        last_start = self._last_start()[steps, envs]                  # [n] step of the episode start, or -1
        for slot in range(self.k):
            source = steps - (self.k - 1) + slot                       # [n] step whose newest frame fills `slot`
            source = np.where(last_start >= 0, np.maximum(source, last_start), source)
            from_first = source < 0                                    # before the rollout: from its first stacks
            out[~from_first, ..., slot] = self.frames[envs[~from_first], source[~from_first]]
            if from_first.any():
                out[from_first, ..., slot] = self.first[envs[from_first], ..., (steps + slot)[from_first]]
        return out

    def _last_start(self) -> np.ndarray:
        """[nsteps, nenvs]: the latest step in 1..t at which an episode started, -1 when none. A start at step 0
        needs no mark: the rollout's first stacks are stored whole, whatever they hold."""
        marks = np.where(self.starts, np.arange(self.nsteps)[:, None], -1)
        marks[0] = -1
        return np.maximum.accumulate(marks, axis=0)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # -> [nenvs * nsteps, H, W, k]
        whole = self[np.arange(len(self))]
        return whole.astype(dtype) if dtype is not None else whole


def concat_obs(parts: list) -> RolloutObs:
    """RolloutObs of several groups of envs (same nsteps), joined along the env axis in order."""
    nsteps, obs_shape, dtype = parts[0].nsteps, parts[0].obs_shape, parts[0].dtype
    joined = RolloutObs(nsteps, sum(part.nenvs for part in parts), obs_shape, dtype)
    joined.starts = np.concatenate([part.starts for part in parts], axis=1)
    if all(part.full is None for part in parts):
        joined.first = np.concatenate([part.first for part in parts])
        joined.frames = np.concatenate([part.frames for part in parts])
    else:   # one group fell back to whole observations: store every group whole
        whole = [np.asarray(part).reshape(part.nenvs, nsteps, *obs_shape).swapaxes(0, 1) for part in parts]
        joined.full, joined.first, joined.frames = np.concatenate(whole, axis=1), None, None
    return joined


class Rollout:
    """What a sampler collects in `nsteps` steps of its envs, before advantages (computed by the learner).

    | field        | shape            | meaning                                                        |
    | obs          | RolloutObs       | observation t of each env (one frame stored per step)          |
    | actions      | [nsteps, nenvs]  | int32, sampled from each env's own random stream               |
    | rewards      | [nsteps, nenvs]  | f32, scaled; + gamma * V(final obs) where a time limit cut;    |
    |              |                  | - the life-loss penalty where a life was lost (Collection)     |
    | values       | [nsteps, nenvs]  | f32, V(obs t)                                                  |
    | neglogpacs   | [nsteps, nenvs]  | f32, -log pi(action t) when sampled                            |
    | dones        | [nsteps, nenvs]  | bool, obs t starts a new episode (or follows a lost life: the  |
    |              |                  | value chain starts again there, see model.collect)             |
    | last_values  | [nenvs]          | f32, V of the observation after the last step                  |
    | last_dones   | [nenvs]          | bool, the same for that observation                            |
    | episodes     | list of dicts    | info['episode'] of the episodes that ended, in step order      |
    """

    FIELDS = ("actions", "rewards", "values", "neglogpacs", "dones")

    def __init__(self, obs, actions, rewards, values, neglogpacs, dones, last_values, last_dones, episodes):
        self.obs, self.actions, self.rewards, self.values = obs, actions, rewards, values
        self.neglogpacs, self.dones, self.last_values, self.last_dones = neglogpacs, dones, last_values, last_dones
        self.episodes = episodes

    @classmethod
    def concat(cls, parts: list) -> "Rollout":
        """Rollouts of consecutive groups of envs -> one rollout over all of them (env axis in order)."""
        arrays = {name: np.concatenate([getattr(part, name) for part in parts], axis=1) for name in cls.FIELDS}
        return cls(concat_obs([part.obs for part in parts]), last_values=np.concatenate([p.last_values for p in parts]),
                   last_dones=np.concatenate([p.last_dones for p in parts]),
                   episodes=[e for part in parts for e in part.episodes], **arrays)


@dataclasses.dataclass(frozen=True)
class Collection:
    """How a rollout is collected: every setting that model.collect reads, and nothing else. A new collection
    option is a field here (with its line in `of`) and its use in model.collect."""
    nsteps: int                         # steps collected from every env
    gamma: float                        # discount of the bootstrap from a time-limit cut
    bootstrap_truncated: bool = True    # a time-limit cut is not an end: its last reward + gamma * V(final obs)
    life_loss_terminal: bool = False    # a lost life ends the value chain (Rollout.dones), the episode goes on
    life_loss_penalty: float = 0.0      # subtracted from the reward of a step that cost a life
    double_buffer: bool = False         # step the envs in two halves, inference of one during the other's steps

    @classmethod
    def of(cls, config) -> "Collection":
        """The collection settings of a config.TrainConfig."""
        return cls(nsteps=config.nsteps, gamma=config.gamma, bootstrap_truncated=not config.truncation_as_terminal,
                   life_loss_terminal=config.life_loss_terminal, life_loss_penalty=config.life_loss_penalty,
                   double_buffer=config.double_buffer)


class Sampler(abc.ABC):
    """What the learner collects its experience with, bound to one model and the envs' action-noise generators:
    model.Runner steps a vector env of this machine, ray_backend.RayRunner the workers of a Ray cluster.
    The learner computes advantages (model.finish) from what either returns."""

    last_transfer = {}   # what the last sample() moved between machines and how long it took (Ray): train's callback gets it

    @abc.abstractmethod
    def sample(self, on_step=None, stop=None):
        """Collect settings.nsteps steps of every env -> Rollout, or None once `stop.requested` turned true
        mid-way. on_step(n): n more vector steps (n x num_envs agent steps) were collected (progress only);
        stop: any object whose `requested` says to stop (model.StopOnSignal)."""


class RemoteEnvs(abc.ABC):
    """Envs stepped away from the learner (ray_backend.RaySampler): they make their own Sampler, where the
    learner wraps a vector env of this machine in model.Runner."""

    @abc.abstractmethod
    def sampler(self, model, rngs, settings: Collection) -> Sampler:
        """The Sampler of these envs for `model`; rngs: the num_envs action-noise generators."""
