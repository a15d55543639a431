"""Small deterministic fake environments for the tests. Importable without TensorFlow: the env workers of
SubprocVecEnv import this module in fresh processes, so every factory here is a module-level function or a
functools.partial of one (picklable).

FakeEmulator   a one-frame emulator like a RetroEnv: the 12 Genesis buttons, MultiBinary(12) actions, RGB frames
               [224, 320, 3] uint8 whose content is `fake_frame(frame number)`, a scripted reward per frame and
               termination after `episode_frames` frames. It records every button array it receives.
ImageBandit    [96, 96, 4] uint8 observations showing a bright patch on the left or the right half; Discrete(7);
               action 0 pays 1 when the patch is on the left, action 1 when it is on the right, anything else 0.
EndlessEnv     reward 1 every step, a constant [96, 96, 4] observation, never terminates (wrap in a TimeLimit).
"""
import functools

import gymnasium as gym
import numpy as np

# stable-retro's Genesis buttons, in the order RetroEnv.buttons lists them
GENESIS_BUTTONS = ["B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z"]
FRAME_SHAPE = (224, 320, 3)

# a fixed pattern with structure in every direction and channel (so gray conversion and resizing matter)
_rows = np.arange(FRAME_SHAPE[0], dtype=np.int64)[:, None, None]
_cols = np.arange(FRAME_SHAPE[1], dtype=np.int64)[None, :, None]
_chans = np.arange(3, dtype=np.int64)[None, None, :]
_BASE = ((3 * _rows + 5 * _cols + 85 * _chans + (_rows * _cols) // 7) % 256).astype(np.uint8)


def fake_frame(frame_number: int) -> np.ndarray:
    """The frame FakeEmulator shows after `frame_number` emulated frames (0 = the reset frame):
    the base pattern plus 37 * frame_number, modulo 256. [224, 320, 3] uint8."""
    return _BASE + np.uint8((37 * frame_number) % 256)   # uint8 arithmetic wraps modulo 256


class FakeEmulator(gym.Env):
    """A deterministic stand-in for a RetroEnv (one emulator frame per step).

    rewards: reward of frame k (k = 1, 2, ...) is rewards[(k - 1) % len(rewards)].
    episode_frames: the episode terminates on that frame (None: never).
    received: every button array passed to step, in order (copies). reset_seeds: the seed of every reset.
    """
    metadata = {"render_modes": []}

    def __init__(self, rewards=(1.0,), episode_frames=None, buttons=GENESIS_BUTTONS):
        self.buttons = list(buttons)
        self.rewards = [float(r) for r in rewards]
        self.episode_frames = episode_frames
        self.action_space = gym.spaces.MultiBinary(len(self.buttons))
        self.observation_space = gym.spaces.Box(0, 255, FRAME_SHAPE, dtype=np.uint8)
        self.render_mode = None
        self.frame = 0          # frames emulated since the last reset
        self.received = []
        self.reset_seeds = []
        self.resets = 0
        self.closed = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.reset_seeds.append(seed)
        self.resets += 1
        self.frame = 0
        return fake_frame(0), {"frame": 0}

    def step(self, action):
        action = np.asarray(action)
        assert action.shape == (len(self.buttons),), action.shape
        self.received.append(action.copy())
        self.frame += 1
        reward = self.rewards[(self.frame - 1) % len(self.rewards)]
        terminated = self.episode_frames is not None and self.frame >= self.episode_frames
        return fake_frame(self.frame), reward, terminated, False, {"frame": self.frame}

    def close(self):
        self.closed = True


class ImageBandit(gym.Env):
    """A contextual bandit seen through pixels. Each observation shows a bright 24x24 patch on the left or the
    right half of a dark noisy 96x96 image (all 4 stacked channels alike); action 0 is right for 'left',
    action 1 for 'right'. Contexts come from the env's seeded generator; episodes last `episode_length` steps."""
    metadata = {"render_modes": []}

    def __init__(self, episode_length=8):
        self.episode_length = episode_length
        self.action_space = gym.spaces.Discrete(7)
        self.observation_space = gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
        self.t = 0
        self.side = 0
        self.rng = np.random.default_rng(0)

    @staticmethod
    def render_context(side: int, rng: np.random.Generator) -> np.ndarray:
        """side 0 = patch on the left, 1 = on the right -> [96, 96, 4] uint8."""
        obs = rng.integers(0, 40, size=(96, 96, 1), dtype=np.uint8)
        top = int(rng.integers(0, 96 - 24))
        left = int(rng.integers(0, 48 - 24)) + 48 * side
        obs[top:top + 24, left:left + 24] = 255
        return np.repeat(obs, 4, axis=2)

    def _observe(self):
        self.side = int(self.rng.integers(0, 2))
        return self.render_context(self.side, self.rng)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._observe(), {"side": self.side}

    def step(self, action):
        reward = 1.0 if int(action) == self.side else 0.0
        self.t += 1
        terminated = self.t >= self.episode_length
        return self._observe(), reward, terminated, False, {"side": self.side}


class EndlessEnv(gym.Env):
    """Reward 1 every step, the same observation forever; never terminates by itself."""
    metadata = {"render_modes": []}

    def __init__(self, value=200):
        self.action_space = gym.spaces.Discrete(7)
        self.observation_space = gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
        # a constant, non-uniform frame, so the network's features are not all zero
        pattern = (np.arange(96 * 96 * 4, dtype=np.int64).reshape(96, 96, 4) * 7919) % 251
        self.obs = ((pattern * value) // 250).astype(np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.obs.copy(), {}

    def step(self, action):
        return self.obs.copy(), 1.0, False, False, {}


class CountingEnv(gym.Env):
    """Observations that say where they come from: a stack of the last 4 frames, frame t of an episode filled
    with the value (base + 16 * episode + 3 * t) % 256, base = 40 * seed of the first reset. Reward of step t
    (t = 1, 2, ...) is t / 2. The episode terminates after `length` steps (None: never)."""
    metadata = {"render_modes": []}

    def __init__(self, length=None):
        self.length = length
        self.action_space = gym.spaces.Discrete(7)
        self.observation_space = gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
        self.base, self.episode, self.t = 0, -1, 0
        self.actions = []

    def frame_value(self, t):
        return (self.base + 16 * self.episode + 3 * max(t, 0)) % 256

    def _obs(self):
        values = [self.frame_value(self.t - 3 + k) for k in range(4)]
        return np.broadcast_to(np.array(values, dtype=np.uint8), (96, 96, 4)).copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.base = 40 * seed
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        terminated = self.length is not None and self.t >= self.length
        return self._obs(), self.t / 2, terminated, False, {}


class EpisodeCounter(gym.Wrapper):
    """info['episode'] = {'r', 'l', 'truncated'} at an episode's end, as env.EpisodeStats (kept TF-free and
    independent of env.py, for the fakes that do not go through env.wrap)."""

    def reset(self, **kwargs):
        self.ret, self.len = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.ret += reward
        self.len += 1
        if terminated or truncated:
            info = dict(info, episode={"r": self.ret, "l": self.len, "truncated": bool(truncated and not terminated)})
        return obs, reward, terminated, truncated, info


# ----------------------------------------------------------------------------- picklable factories

def make_fake_emulator(rewards=(1.0,), episode_frames=None, buttons=GENESIS_BUTTONS):
    return FakeEmulator(rewards, episode_frames, buttons)


def make_wrapped_fake(rewards=(1.0,), episode_frames=None, max_episode_steps=4500, finish_reward=None):
    """FakeEmulator inside the project's full wrapper chain (env.wrap): [96, 96, 4] uint8, Discrete(7)."""
    import env as envs   # the project's env module (no TensorFlow)
    return envs.wrap(FakeEmulator(rewards, episode_frames), finish_reward=finish_reward,
                     max_episode_steps=max_episode_steps)


def make_bandit(episode_length=8):
    return EpisodeCounter(ImageBandit(episode_length))


def make_endless(max_episode_steps=10):
    return gym.wrappers.TimeLimit(EndlessEnv(), max_episode_steps=max_episode_steps)


def make_counting(length=None, max_episode_steps=None):
    counting = CountingEnv(length)
    if max_episode_steps:
        counting = gym.wrappers.TimeLimit(counting, max_episode_steps=max_episode_steps)
    return EpisodeCounter(counting)


def make_failing():
    raise RuntimeError("this env cannot be built")


def wrapped_fake_fns(n, **kwargs):
    return [functools.partial(make_wrapped_fake, **kwargs) for _ in range(n)]


def bandit_fns(n, episode_length=8):
    return [functools.partial(make_bandit, episode_length) for _ in range(n)]


def endless_fns(n, max_episode_steps=10):
    return [functools.partial(make_endless, max_episode_steps) for _ in range(n)]


# ----------------------------------------------------------------------------- levels (monitor.py)

LEVEL_REWARD = {"A": 1.0, "B": 2.0}   # reward per emulator frame on each fake level
LEVEL_FRAMES = 40                     # every episode lasts 40 frames (10 agent steps): return 40 x the reward
LEVEL_FINISH = 100.0                  # the whole 'level' pays 100: progress = return / 100


def make_fake_level(game, level, frame_sink=None, render_mode=None):
    """make_level's signature over FakeEmulator in the full chain: level 'A' returns 40 per episode (progress
    0.4), level 'B' 80 (0.8); the episodes name their level."""
    import env as envs
    return envs.wrap(FakeEmulator((LEVEL_REWARD[level],), LEVEL_FRAMES), finish_reward=LEVEL_FINISH,
                     frame_sink=frame_sink, level=level)


def fake_level_fns(levels):
    return [functools.partial(make_fake_level, "Fake", level) for level in levels]
