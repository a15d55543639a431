"""Deterministic fake levels for evaluate.py's tests; importable without TensorFlow.

A `ScoreLevel` looks like one fully wrapped environment of this project (observations [96, 96, 4] uint8,
Discrete(7) actions, info['episode'] from env.EpisodeStats at the end of an episode) and is driven by one
numpy generator seeded on `reset(seed=...)`:
- each episode's length is drawn at its reset, independent of the actions taken;
- each step pays an integer reward that depends on the action and on the generator (so a wrong seed, a
  wrong action or a wrong observation fed to the policy gives other numbers).
"""
import functools

import gymnasium as gym
import numpy as np

from env import EpisodeStats

OBS_SHAPE = (96, 96, 4)
N_ACTIONS = 7


class ScoreLevel(gym.Env):
    """One fake level; `bonus` makes levels score differently, `min_len`..`max_len` bound episode lengths."""

    def __init__(self, bonus: int = 0, min_len: int = 3, max_len: int = 9):
        self.observation_space = gym.spaces.Box(0, 255, OBS_SHAPE, dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.bonus, self.min_len, self.max_len = bonus, min_len, max_len
        self.rng = np.random.default_rng()
        self.length, self.t = 0, 0

    def _obs(self) -> np.ndarray:  # -> [96, 96, 4] uint8, constant, changing with every step
        return np.full(OBS_SHAPE, (self.t * 37 + self.length * 11 + self.bonus) % 256, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.length, self.t = int(self.rng.integers(self.min_len, self.max_len + 1)), 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        reward = float(10 * (int(action) + 1) + self.bonus + int(self.rng.integers(0, 5)))
        return self._obs(), reward, self.t >= self.length, False, {}


def make_score_level(bonus: int = 0, finish_reward=None):
    """A ScoreLevel wrapped in the project's EpisodeStats (finish_reward set: episodes report 'progress')."""
    return EpisodeStats(ScoreLevel(bonus), finish_reward=finish_reward)


def score_level_factories(finish_reward=None) -> dict:
    """Three fake levels, level name -> zero-argument factory (as evaluate.level_factories returns)."""
    return {name: functools.partial(make_score_level, bonus, finish_reward)
            for name, bonus in (("Fake.Act1", 0), ("Fake.Act2", 100), ("Fake.Act3", 1000))}


def obs_act(obs: np.ndarray) -> np.ndarray:
    """A deterministic policy reading the observation: obs [n, 96, 96, 4] uint8 -> actions [n] int32."""
    return (obs[:, 0, 0, -1].astype(np.int32) // 3) % N_ACTIONS
