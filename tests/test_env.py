"""env.py: every wrapper on a fake emulator whose frames and rewards are known, the chain env.wrap builds, the
level list, and the fallback to the embedded default game."""
import os
import sys

import cv2
import gymnasium as gym
import numpy as np
import pytest
import stable_retro

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_envs import GENESIS_BUTTONS, FakeEmulator, fake_frame  # noqa: E402

import env  # noqa: E402

SEED_LEVELS = [
    "SpringYardZone.Act3", "SpringYardZone.Act2", "GreenHillZone.Act3", "GreenHillZone.Act1",
    "StarLightZone.Act2", "StarLightZone.Act1", "MarbleZone.Act2", "MarbleZone.Act1", "MarbleZone.Act3",
    "ScrapBrainZone.Act2", "LabyrinthZone.Act2", "LabyrinthZone.Act1", "LabyrinthZone.Act3",
]

# the 7 actions as button indices of stable-retro's Genesis order, worked out by hand from
# ['B'=0, 'A'=1, 'MODE'=2, 'START'=3, 'UP'=4, 'DOWN'=5, 'LEFT'=6, 'RIGHT'=7, 'C'=8, 'Y'=9, 'X'=10, 'Z'=11]
HAND_ACTION_INDICES = [{6}, {7}, {6, 5}, {7, 5}, {5}, {5, 0}, {0}]


def gray96(frame):
    """What PreprocessFrame should make of an RGB frame, computed here with cv2."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA)[:, :, None]


def buttons_of(indices, n=12):
    pressed = np.zeros(n, dtype=np.int8)
    pressed[list(indices)] = 1
    return pressed


# ----------------------------------------------------------------------------- StickyFrameSkip

def test_sticky_frame_skip_holds_each_action_for_4_frames_and_sums_rewards():
    fake = FakeEmulator(rewards=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    wrapped = env.StickyFrameSkip(fake, stickprob=0.0)
    assert wrapped.skip == 4
    assert not wrapped._blind                 # a fake is stepped through its own step()
    obs, _ = wrapped.reset(seed=0)
    np.testing.assert_array_equal(obs, fake_frame(0))
    action = buttons_of({7})
    obs, reward, terminated, truncated, _ = wrapped.step(action)
    assert reward == 1 + 2 + 3 + 4
    assert not terminated and not truncated
    np.testing.assert_array_equal(obs, fake_frame(4))      # the last of the 4 frames is observed
    obs, reward, *_ = wrapped.step(buttons_of({6}))
    assert reward == 5 + 6 + 7 + 8
    np.testing.assert_array_equal(obs, fake_frame(8))
    assert len(fake.received) == 8
    for frame, expected in enumerate([action] * 4 + [buttons_of({6})] * 4):
        np.testing.assert_array_equal(fake.received[frame], expected)


def test_sticky_frame_skip_stops_at_the_frame_the_episode_ends():
    fake = FakeEmulator(rewards=[10, 20, 30, 40, 50, 60, 70, 80], episode_frames=6)
    wrapped = env.StickyFrameSkip(fake, stickprob=0.0)
    wrapped.reset(seed=0)
    _, reward, terminated, _, _ = wrapped.step(buttons_of({0}))
    assert (reward, terminated) == (100, False)
    obs, reward, terminated, truncated, info = wrapped.step(buttons_of({0}))
    assert reward == 50 + 60                       # frames 5 and 6 only
    assert terminated and not truncated
    assert info["frame"] == 6 and len(fake.received) == 6
    np.testing.assert_array_equal(obs, fake_frame(6))


def _sticky_pattern(seed, nsteps, stickprob=env.STICK_PROB):
    """Run nsteps alternating actions; returns [nsteps] bool: was the first frame the previous action's."""
    fake = FakeEmulator()
    wrapped = env.StickyFrameSkip(fake, stickprob=stickprob)
    wrapped.reset(seed=seed)
    actions = [buttons_of({6}), buttons_of({7})]
    for step in range(nsteps):
        wrapped.step(actions[step % 2])
    received = np.array(fake.received).reshape(nsteps, 4, 12)
    sticky = np.zeros(nsteps, dtype=bool)
    for step in range(nsteps):
        current, previous = actions[step % 2], actions[(step + 1) % 2]
        # frames 2 to 4 always carry the new action
        np.testing.assert_array_equal(received[step, 1:], np.broadcast_to(current, (3, 12)))
        if np.array_equal(received[step, 0], previous):
            sticky[step] = True
        else:
            np.testing.assert_array_equal(received[step, 0], current)
    return sticky


def test_sticky_first_frame_has_probability_one_quarter_and_is_reproducible():
    assert env.StickyFrameSkip(FakeEmulator()).stickprob == 0.25
    nsteps = 2000
    sticky = _sticky_pattern(seed=123, nsteps=nsteps)
    assert not sticky[0]                      # nothing is held right after a reset
    fraction = sticky[1:].mean()
    assert abs(fraction - 0.25) < 0.04        # 4 standard deviations of a binomial(1999, 0.25) fraction
    # exactly reproducible, and exactly the seeded generator's draws: one uniform per step after the first
    np.testing.assert_array_equal(_sticky_pattern(seed=123, nsteps=nsteps), sticky)
    expected = env.sticky_generator(123).random(nsteps - 1) < 0.25
    np.testing.assert_array_equal(sticky[1:], expected)
    assert not np.array_equal(_sticky_pattern(seed=124, nsteps=nsteps), sticky)


def test_env_0_sticky_frames_and_the_learner_draw_different_streams():
    """Env i is reset with seed + i and model.learn draws from default_rng(seed): for env 0 the two seeds are the
    same number, yet the sticky frames must not replay the learner's minibatch shuffles (nor the reverse)."""
    for seed in (0, 1, 123):
        learner = np.random.default_rng(seed).random(1000)
        sticky = _sticky_pattern(seed=seed, nsteps=1001)[1:]
        assert not np.array_equal(env.sticky_generator(seed).random(1000), learner)
        assert not np.array_equal(sticky, learner < env.STICK_PROB)
        np.testing.assert_array_equal(sticky, env.sticky_generator(seed).random(1000) < env.STICK_PROB)


def test_sticky_frame_skip_forgets_the_held_action_on_reset():
    fake = FakeEmulator()
    wrapped = env.StickyFrameSkip(fake, stickprob=1.0)     # always sticky when something is held
    wrapped.reset(seed=0)
    wrapped.step(buttons_of({6}))
    wrapped.step(buttons_of({7}))
    np.testing.assert_array_equal(fake.received[4], buttons_of({6}))   # sticky
    wrapped.reset(seed=0)
    wrapped.step(buttons_of({0}))
    np.testing.assert_array_equal(fake.received[8], buttons_of({0}))   # first step of an episode: not sticky


# ----------------------------------------------------------------------------- TimeLimit

def test_wrap_cuts_episodes_at_4500_agent_steps():
    wrapped = env.wrap(FakeEmulator(rewards=[0.0]))     # never terminates by itself
    wrapped.reset(seed=0)
    for step in range(1, 4500):
        _, _, terminated, truncated, info = wrapped.step(1)
        assert not (terminated or truncated), step
        assert "episode" not in info
    _, _, terminated, truncated, info = wrapped.step(1)
    assert truncated and not terminated
    assert info["episode"]["l"] == 4500 and info["episode"]["truncated"] is True
    assert wrapped.unwrapped.frame == 4500 * 4


# ----------------------------------------------------------------------------- LifeLoss

class ScriptedLives(gym.Env):
    """info['lives'] of step k (k = 1, 2, ...) is lives[k]; lives[0] is the reset's. None: no 'lives' key."""
    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def __init__(self, lives):
        self.lives, self.k = lives, 0

    def _info(self):
        return {} if self.lives[self.k] is None else {"lives": self.lives[self.k]}

    def reset(self, *, seed=None, options=None):
        self.k = 0
        return 0, self._info()

    def step(self, action):
        self.k += 1
        return 0, 0.0, self.k == len(self.lives) - 1, False, self._info()


def _life_lost_flags(wrapped, steps):
    wrapped.reset()
    return [bool(wrapped.step(0)[4].get("life_lost")) for _ in range(steps)]


def test_life_loss_flags_exactly_the_steps_whose_lives_count_fell():
    wrapped = env.LifeLoss(ScriptedLives([3, 3, 2, 2, 2, 1, 1, 0]))
    assert _life_lost_flags(wrapped, 7) == [False, True, False, False, True, False, True]
    # a new episode starts from its own count: its first step is not a loss though 3 > the last episode's 0
    assert _life_lost_flags(wrapped, 2) == [False, True]


def test_life_loss_never_flags_a_game_without_lives_or_a_count_that_rises():
    assert _life_lost_flags(env.LifeLoss(ScriptedLives([None] * 5)), 4) == [False] * 4
    assert _life_lost_flags(env.LifeLoss(ScriptedLives([1, 2, 2, 3, 3])), 4) == [False] * 4   # an extra life


# ----------------------------------------------------------------------------- EpisodeStats

def test_episode_stats_reports_raw_return_length_and_progress():
    rewards = [100, -50, 300, -200, 10]        # cumulative 100, 50, 350, 150, 160: best 350
    stats = env.EpisodeStats(FakeEmulator(rewards=rewards, episode_frames=5), finish_reward=1000)
    for episode in range(2):                   # the second episode starts from zero again
        stats.reset(seed=episode)
        for step in range(4):
            info = stats.step(np.zeros(12))[4]
            assert "episode" not in info
        _, reward, terminated, truncated, info = stats.step(np.zeros(12))
        assert reward == 10 and terminated
        assert info["episode"] == {"r": 160.0, "l": 5, "truncated": False, "progress": pytest.approx(0.35)}
        assert info["frame"] == 5              # the env's own info is kept


def test_episode_stats_progress_is_capped_at_one_and_absent_without_a_finish_reward():
    capped = env.EpisodeStats(FakeEmulator(rewards=[150], episode_frames=2), finish_reward=200)
    capped.reset()
    capped.step(np.zeros(12))
    assert capped.step(np.zeros(12))[4]["episode"]["progress"] == 1.0
    plain = env.EpisodeStats(FakeEmulator(rewards=[150], episode_frames=2))
    plain.reset()
    plain.step(np.zeros(12))
    assert plain.step(np.zeros(12))[4]["episode"] == {"r": 300.0, "l": 2, "truncated": False}


def test_episode_stats_truncated_flag():
    cut = env.EpisodeStats(gym.wrappers.TimeLimit(FakeEmulator(rewards=[2]), max_episode_steps=3))
    cut.reset()
    infos = [cut.step(np.zeros(12))[4] for _ in range(3)]
    assert infos[-1]["episode"] == {"r": 6.0, "l": 3, "truncated": True}
    # an episode that ends on the very step the time limit falls counts as a real end
    both = env.EpisodeStats(gym.wrappers.TimeLimit(FakeEmulator(rewards=[2], episode_frames=3), max_episode_steps=3))
    both.reset()
    results = [both.step(np.zeros(12)) for _ in range(3)]
    assert results[-1][2] and results[-1][3]
    assert results[-1][4]["episode"]["truncated"] is False


# ----------------------------------------------------------------------------- ActionsDiscretizer

def test_actions_discretizer_presses_exactly_the_right_buttons():
    fake = FakeEmulator()
    wrapped = env.ActionsDiscretizer(fake)
    assert wrapped.action_space == gym.spaces.Discrete(7)
    assert env.ACTIONS == [["LEFT"], ["RIGHT"], ["LEFT", "DOWN"], ["RIGHT", "DOWN"], ["DOWN"], ["DOWN", "B"], ["B"]]
    wrapped.reset()
    for action in range(7):
        wrapped.step(action)
        pressed = fake.received[-1]
        assert set(np.flatnonzero(pressed)) == HAND_ACTION_INDICES[action], action
        by_name = {GENESIS_BUTTONS.index(name) for name in env.ACTIONS[action]}
        assert set(np.flatnonzero(pressed)) == by_name
        assert pressed.shape == (12,) and set(np.unique(pressed)) <= {0, 1}
    # the returned array is a copy: changing what the emulator got does not change the mapping
    fake.received[-1][:] = 1
    wrapped.step(6)
    assert set(np.flatnonzero(fake.received[-1])) == {0}


def test_actions_discretizer_reads_button_indices_from_the_emulator():
    shuffled = ["RIGHT", "Z", "DOWN", "A", "LEFT", "B", "START", "C", "MODE", "UP", "X", "Y"]
    fake = FakeEmulator(buttons=shuffled)
    wrapped = env.ActionsDiscretizer(fake)
    wrapped.reset()
    for action, combo in enumerate(env.ACTIONS):
        wrapped.step(action)
        assert {shuffled[i] for i in np.flatnonzero(fake.received[-1])} == set(combo)


# ----------------------------------------------------------------------------- RewardScaler

def test_reward_scaler_multiplies_by_one_hundredth():
    scaled = env.RewardScaler(FakeEmulator(rewards=[150, -20, 7]))
    assert scaled.scale == 0.01
    scaled.reset()
    got = [scaled.step(np.zeros(12))[1] for _ in range(3)]
    assert got == pytest.approx([1.5, -0.2, 0.07], abs=1e-12)


# ----------------------------------------------------------------------------- PreprocessFrame

def area_resize(image, out_h, out_w):
    """Area resampling written out: each output pixel averages the source pixels it covers, weighted by the
    covered fraction of each. image [H, W] float -> [out_h, out_w] float."""
    def weights(n_in, n_out):
        scale = n_in / n_out
        w = np.zeros((n_out, n_in))
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), int(np.ceil(hi))):
                w[i, j] = min(hi, j + 1) - max(lo, j)
        return w / scale
    return weights(image.shape[0], out_h) @ image @ weights(image.shape[1], out_w).T


def test_preprocess_frame_is_gray_area_resized_96x96_uint8():
    fake = FakeEmulator()
    wrapped = env.PreprocessFrame(fake)
    assert wrapped.observation_space == gym.spaces.Box(0, 255, (96, 96, 1), dtype=np.uint8)
    obs, _ = wrapped.reset()
    assert obs.shape == (96, 96, 1) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, gray96(fake_frame(0)))
    obs = wrapped.step(np.zeros(12))[0]
    np.testing.assert_array_equal(obs, gray96(fake_frame(1)))
    # independently: luma of RGB (0.299 R + 0.587 G + 0.114 B), then area averaging
    rgb = fake_frame(1).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    reference = area_resize(luma, 96, 96)
    assert np.max(np.abs(obs[:, :, 0] - reference)) <= 1.5
    # the frame is one where the channel order matters: BGR would give another image
    bgr_gray = cv2.resize(cv2.cvtColor(fake_frame(1), cv2.COLOR_BGR2GRAY), (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(bgr_gray.astype(int) - obs[:, :, 0]).max() > 10


# ----------------------------------------------------------------------------- FrameStack

def test_frame_stack_fills_on_reset_and_shifts_on_step():
    fake = FakeEmulator()
    wrapped = env.FrameStack(env.PreprocessFrame(fake))
    assert wrapped.observation_space.shape == (96, 96, 4)
    g = [gray96(fake_frame(n))[:, :, 0] for n in range(7)]
    assert all(not np.array_equal(g[0], g[n]) for n in range(1, 7))
    obs, _ = wrapped.reset()
    assert obs.shape == (96, 96, 4) and obs.dtype == np.uint8
    for slot in range(4):
        np.testing.assert_array_equal(obs[:, :, slot], g[0])
    expected_order = {1: [0, 0, 0, 1], 2: [0, 0, 1, 2], 3: [0, 1, 2, 3], 4: [1, 2, 3, 4], 5: [2, 3, 4, 5]}
    kept = []
    for step in range(1, 6):
        obs = wrapped.step(np.zeros(12))[0]
        kept.append(obs)
        for slot, frame in enumerate(expected_order[step]):
            np.testing.assert_array_equal(obs[:, :, slot], g[frame], err_msg=f"step {step} slot {slot}")
    # returned stacks are copies: later steps do not change them
    np.testing.assert_array_equal(kept[0][:, :, 3], g[1])
    obs, _ = wrapped.reset()                       # a reset forgets the old frames
    for slot in range(4):
        np.testing.assert_array_equal(obs[:, :, slot], g[0])


# ----------------------------------------------------------------------------- AllowBacktracking

def test_allow_backtracking_pays_only_new_progress():
    # cumulative 1, 3, 0, 1, 2, 6, 5, 7; best so far before each step 0, 1, 3, 3, 3, 3, 6, 6
    wrapped = env.AllowBacktracking(FakeEmulator(rewards=[1, 2, -3, 1, 1, 4, -1, 2]))
    wrapped.reset()
    got = [wrapped.step(np.zeros(12))[1] for _ in range(8)]
    assert got == [1, 2, 0, 0, 0, 3, 0, 1]
    # going back first costs nothing; the start (0) must be passed again before anything is paid
    wrapped = env.AllowBacktracking(FakeEmulator(rewards=[-2, 1, 3]))
    wrapped.reset()
    assert [wrapped.step(np.zeros(12))[1] for _ in range(3)] == [0, 0, 2]


def test_allow_backtracking_starts_afresh_each_episode():
    # one episode: cumulative 1, 3, 0, 1 -> paid 1, 2, 0, 0; it ends below its best
    wrapped = env.AllowBacktracking(FakeEmulator(rewards=[1, 2, -3, 1], episode_frames=4))
    for _ in range(3):
        wrapped.reset()
        got = [wrapped.step(np.zeros(12))[1] for _ in range(4)]
        assert got == [1, 2, 0, 0]   # without the reset the next episode would be paid 0, 1, 0, 0


# ----------------------------------------------------------------------------- the whole chain

def test_wrap_builds_the_chain_in_order():
    fake = FakeEmulator()
    wrapped = env.wrap(fake)
    chain = []
    layer = wrapped
    while isinstance(layer, gym.Wrapper):
        chain.append(type(layer))
        layer = layer.env
    assert layer is fake
    assert chain == [env.AllowBacktracking, env.FrameStack, env.PreprocessFrame, env.RewardScaler,
                     env.ActionsDiscretizer, env.EpisodeStats, gym.wrappers.TimeLimit, env.LifeLoss,
                     env.StickyFrameSkip]
    time_limit = wrapped.env.env.env.env.env.env
    assert time_limit._max_episode_steps == env.MAX_EPISODE_STEPS == 4500
    sticky = time_limit.env.env
    assert (sticky.skip, sticky.stickprob) == (4, 0.25)
    assert wrapped.observation_space == gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
    assert wrapped.action_space == gym.spaces.Discrete(7)


def test_wrap_end_to_end_on_known_frames_and_rewards():
    """Every step of the wrapped fake worked out independently: sticky draws from the seed, frames from the
    frame numbers, rewards as raw sums over 4 frames, scaled, then with backtracking allowed."""
    raw = [30, -10, 50, 0, -80, -40, 20, 10, 100, 5, -5, 0]       # per frame, repeating
    episode_frames = 40                                            # 10 agent steps
    fake = FakeEmulator(rewards=raw, episode_frames=episode_frames)
    wrapped = env.wrap(fake)
    seed, actions = 7, [1, 0, 1, 5, 5, 2, 3, 6, 4, 1]
    obs, _ = wrapped.reset(seed=seed)
    g0 = gray96(fake_frame(0))
    np.testing.assert_array_equal(obs, np.repeat(g0, 4, axis=2))
    draws = iter(env.sticky_generator(seed).random(len(actions) - 1))
    held, cumulative, best, episode_return = None, 0.0, 0.0, 0.0
    frames = [g0[:, :, 0]] * 4
    for step, action in enumerate(actions):
        obs, reward, terminated, truncated, info = wrapped.step(action)
        sticky = held is not None and next(draws) < 0.25
        first = held if sticky else action
        expected_buttons = [first, action, action, action]
        for k, a in enumerate(expected_buttons):
            np.testing.assert_array_equal(fake.received[4 * step + k], buttons_of(HAND_ACTION_INDICES[a]))
        held = action
        step_raw = sum(raw[(4 * step + k) % len(raw)] for k in range(4))
        episode_return += step_raw
        cumulative += 0.01 * step_raw
        assert reward == pytest.approx(max(0.0, cumulative - best), abs=1e-9), step
        best = max(best, cumulative)
        frames = frames[1:] + [gray96(fake_frame(4 * (step + 1)))[:, :, 0]]
        np.testing.assert_array_equal(obs, np.stack(frames, axis=2))
        assert terminated == (step == len(actions) - 1) and not truncated
    assert info["episode"]["r"] == pytest.approx(episode_return)     # raw units, negatives included
    assert info["episode"]["l"] == 10 and "progress" not in info["episode"]


def test_wrap_sends_every_emulator_frame_to_a_frame_sink():
    class Sink:
        def __init__(self):
            self.firsts, self.frames = [], []

        def new_episode(self, frame):
            self.firsts.append(frame)

        def add(self, frame):
            self.frames.append(frame)

    sink = Sink()
    wrapped = env.wrap(FakeEmulator(), frame_sink=sink)
    wrapped.reset(seed=0)
    for _ in range(3):
        wrapped.step(0)
    assert len(sink.firsts) == 1 and len(sink.frames) == 12
    np.testing.assert_array_equal(sink.firsts[0], fake_frame(0))
    for n, frame in enumerate(sink.frames, start=1):
        np.testing.assert_array_equal(frame, fake_frame(n))


# ----------------------------------------------------------------------------- levels and games

def test_level_list_is_the_seed_list():
    assert env.LEVELS == SEED_LEVELS
    assert env.TEST_LEVEL == "GreenHillZone.Act2"
    assert env.SONIC_GAME == "SonicTheHedgehog-Genesis-v0"
    assert env.TEST_LEVEL not in env.LEVELS


def test_every_level_is_a_state_stable_retro_ships_for_sonic():
    states = stable_retro.data.list_states(env.SONIC_GAME, stable_retro.data.Integrations.ALL)
    for level in env.LEVELS + [env.TEST_LEVEL] + env.HELD_OUT_LEVELS:
        assert level in states, level
    env.check_levels(env.SONIC_GAME, env.LEVELS)
    with pytest.raises(env.GameError, match="GreenHillZone.Act9"):
        env.check_levels(env.SONIC_GAME, ["GreenHillZone.Act9"])


def test_make_train_functions_build_each_level_in_order(monkeypatch):
    calls = []
    monkeypatch.setattr(env, "make_env", lambda idx, *a, **k: calls.append((idx, a, k)) or idx)
    for idx in range(13):
        assert callable(getattr(env, f"make_train_{idx}"))
        assert getattr(env, f"make_train_{idx}")() == idx
    assert not hasattr(env, "make_train_13")
    assert [c[0] for c in calls] == list(range(13))
    assert [env.level_for(i, env.SONIC_GAME) for i in range(13)] == SEED_LEVELS
    assert env.level_for(13, env.SONIC_GAME) == SEED_LEVELS[0]     # the list is cycled
    assert env.default_levels(env.DEFAULT_GAME) == ["Level1"]


def _without_sonic_rom(monkeypatch):
    real = env.rom_imported
    monkeypatch.setattr(env, "rom_imported", lambda game: game != env.SONIC_GAME and real(game))


def test_without_the_rom_auto_falls_back_to_airstriker(monkeypatch):
    _without_sonic_rom(monkeypatch)
    assert env.resolve_game("auto") == "Airstriker-Genesis-v0" == env.DEFAULT_GAME
    assert "Sonic ROM not imported" in env.fallback_notice("auto", env.DEFAULT_GAME)
    assert env.fallback_notice("auto", env.SONIC_GAME) == ""
    with pytest.raises(env.GameError) as error:
        env.resolve_game("sonic")
    assert "python -m stable_retro.import" in str(error.value)
    with pytest.raises(env.GameError, match="python -m stable_retro.import"):
        env.resolve_game(env.SONIC_GAME)
    with pytest.raises(env.GameError, match="unknown game"):
        env.resolve_game("NoSuchGame-Genesis-v0")


@pytest.mark.skipif(env.rom_imported(env.SONIC_GAME), reason="the Sonic ROM is imported here")
def test_this_machine_without_the_rom_uses_airstriker():
    assert env.resolve_game("auto") == env.DEFAULT_GAME
    with pytest.raises(env.GameError, match="python -m stable_retro.import"):
        env.resolve_game("sonic")


@pytest.mark.slow
def test_real_airstriker_env_from_make_env():
    built = env.make_env(0, "auto") if not env.rom_imported(env.SONIC_GAME) else env.make_env(0, env.DEFAULT_GAME)
    try:
        assert built.unwrapped.gamename == env.DEFAULT_GAME
        assert list(built.unwrapped.buttons) == GENESIS_BUTTONS     # the fake's order is stable-retro's
        assert built.observation_space == gym.spaces.Box(0, 255, (96, 96, 4), dtype=np.uint8)
        assert built.action_space == gym.spaces.Discrete(7)
        obs, _ = built.reset(seed=0)
        assert obs.shape == (96, 96, 4) and obs.dtype == np.uint8
        for action in range(7):
            obs, reward, terminated, truncated, _ = built.step(action)
            assert obs.shape == (96, 96, 4) and obs.dtype == np.uint8
            assert np.isfinite(reward) and reward >= 0     # AllowBacktracking never pays less than 0
        assert obs.std() > 0                                # a real picture, not a blank
    finally:
        built.close()


@pytest.mark.slow
def test_blind_frame_skip_matches_stepping_every_frame_on_airstriker():
    """On a RetroEnv the skipped frames are emulated without reading the screen; the result must be the same
    as stepping each frame through RetroEnv.step."""
    actions = np.random.default_rng(5).integers(0, 7, size=300)

    def run(blind):
        built = env.make_level(env.DEFAULT_GAME, env.DEFAULT_STATE)
        try:
            sticky = built
            while not isinstance(sticky, env.StickyFrameSkip):
                sticky = sticky.env
            assert sticky._blind
            sticky._blind = blind
            obs, _ = built.reset(seed=11)
            out = [obs]
            for action in actions:
                obs, reward, terminated, truncated, info = built.step(action)
                out.append((obs, reward, terminated, truncated, info.get("episode")))
                if terminated or truncated:
                    break
            return out
        finally:
            built.close()

    blind, plain = run(True), run(False)
    assert len(blind) == len(plain)
    np.testing.assert_array_equal(blind[0], plain[0])
    for step, (a, b) in enumerate(zip(blind[1:], plain[1:])):
        np.testing.assert_array_equal(a[0], b[0], err_msg=f"step {step}")
        assert a[1:] == b[1:], step
