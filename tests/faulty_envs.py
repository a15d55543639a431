"""Fake environments for the robustness tests, importable WITHOUT TensorFlow (env workers import this module in
fresh processes): a small deterministic image env and envs that raise or die after N steps.

Every factory is a module-level function, and `env_fns` returns functools.partial objects, so they pickle
into SubprocVecEnv's forkserver workers.
"""
import functools
import os
import signal
import time

import gymnasium as gym
import numpy as np

SHAPE = (96, 96, 4)
NACTIONS = 7
_PATTERN = (np.arange(SHAPE[0] * SHAPE[1], dtype=np.int64).reshape(SHAPE[:2]) * 7 % 251).astype(np.uint8)


class ImageEnv(gym.Env):
    """[96, 96, 4] uint8 observations, Discrete(7) actions, episodes of exactly `episode_length` steps.

    Deterministic: each frame depends on the seed of the first reset, the step within the episode and the
    last action; observations stack the last 4 frames as env.FrameStack does (the first frame repeated after
    a reset). The reward is 1 when the action equals (seed + step) % 7. A reset without a seed starts the same
    episode as the first seeded one, so a fresh process and a long-running one agree at every episode start.
    The last step of an episode puts info['episode'] = {'r', 'l'} (as env.EpisodeStats). With `decay`, every
    reward is 10 / (1 + episodes finished before), so each episode returns less than the one before: the
    mean return then falls from update to update and the first checkpoint stays the best."""

    metadata = {"render_modes": []}

    def __init__(self, episode_length: int = 16, level: str = "level-0", decay: bool = False):
        self.episode_length, self.level, self.decay = episode_length, level, decay
        self.episodes_done = 0
        self.observation_space = gym.spaces.Box(0, 255, SHAPE, dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(NACTIONS)
        self.base, self.t, self.last_action, self.episode_return = 0, 0, 0, 0.0
        self.steps_taken = 0   # over the env's life, across episodes
        self.stack = np.zeros(SHAPE, dtype=np.uint8)

    def _frame(self) -> np.ndarray:  # -> [96, 96] uint8
        shift = (self.base * 31 + self.t * 17 + self.last_action * 5) % 256
        return (_PATTERN + np.uint8(shift)).astype(np.uint8)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.base = int(seed)
        self.t, self.last_action, self.episode_return = 0, 0, 0.0
        self.stack[:] = self._frame()[:, :, None]
        return self.stack.copy(), {}

    def step(self, action):
        action = int(action)
        reward = 1.0 if action == (self.base + self.t) % NACTIONS else 0.0
        if self.decay:
            reward = 10.0 / (1 + self.episodes_done)
        self.t += 1
        self.steps_taken += 1
        self.last_action = action
        self.episode_return += reward
        terminated = self.t >= self.episode_length
        self.episodes_done += terminated
        info = {"episode": {"r": self.episode_return, "l": self.t}} if terminated else {}
        self.stack[:, :, :-1] = self.stack[:, :, 1:]
        self.stack[:, :, -1] = self._frame()
        return self.stack.copy(), reward, terminated, False, info


class FailingEnv(ImageEnv):
    """An ImageEnv whose `fail_after`-th step fails: mode 'raise' raises RuntimeError, mode 'kill' kills its own
    process with SIGKILL, mode 'hang' never answers (sleeps for an hour), mode 'stall-mid-message' sends the
    length of its answer and stops (SIGSTOP) before the rest. With `marker` (a file path) it fails only while that file does not exist, and creates
    it when failing: a restarted worker then goes on (the failure happens once over all processes)."""

    def __init__(self, fail_after: int, mode: str = "raise", marker=None, **kwargs):
        super().__init__(**kwargs)
        self.fail_after, self.mode, self.marker = fail_after, mode, marker

    def step(self, action):
        if self.steps_taken + 1 >= self.fail_after and not (self.marker and os.path.exists(self.marker)):
            if self.marker:
                with open(self.marker, "w") as fh:
                    fh.write(str(os.getpid()))
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.mode == "hang":
                time.sleep(3600)
            if self.mode == "stall-mid-message":
                stop_after_next_header()
                obs, reward, terminated, truncated, info = super().step(action)
                # over 16 KiB whatever carries the observation (pipe or shared memory), as an answer that
                # holds a final observation is
                return obs, reward, terminated, truncated, dict(info, padding=bytes(40_000))
            raise RuntimeError(f"fake emulator failure at step {self.steps_taken + 1} of {self.level}")
        return super().step(action)


def stop_after_next_header() -> None:
    """In an env worker: the next message over 16 KiB that it sends (multiprocessing writes its 4-byte length,
    then its body) is cut after the length, and the process stops itself there (SIGSTOP), as a worker stopped
    in the middle of sending would be."""
    from multiprocessing.connection import Connection
    send = Connection._send

    def send_then_stop(self, buf, *args):
        send(self, buf, *args)
        if len(buf) == 4:
            os.kill(os.getpid(), signal.SIGSTOP)
    Connection._send = send_then_stop


def make_image_env(idx: int = 0, episode_length: int = 16, decay: bool = False) -> ImageEnv:
    return ImageEnv(episode_length=episode_length, level=f"level-{idx}", decay=decay)


def make_failing_env(idx: int = 0, fail_after: int = 5, mode: str = "raise", marker=None,
                     episode_length: int = 16) -> FailingEnv:
    return FailingEnv(fail_after, mode=mode, marker=marker, episode_length=episode_length, level=f"level-{idx}")


def env_fns(num_envs: int, episode_length: int = 16, failing=None, decay: bool = False, **failing_kwargs) -> list:
    """Picklable factories for `num_envs` image envs; env number `failing` (if given) is a FailingEnv."""
    return [functools.partial(make_failing_env, idx, episode_length=episode_length, **failing_kwargs)
            if idx == failing else functools.partial(make_image_env, idx, episode_length=episode_length, decay=decay)
            for idx in range(num_envs)]


def names(num_envs: int) -> list:
    """Env names as the learner reports them: 'fake/level-<idx>'."""
    return [f"fake/level-{idx}" for idx in range(num_envs)]
