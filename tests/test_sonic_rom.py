"""Sonic the Hedgehog: the tests that need the ROM (marked `rom`, skipped with the reason when it is not imported),
and the Sonic checks that run everywhere (stable-retro's data files, the Sonic path of env.py on a fake emulator)."""
import json
import os
import sys

import gymnasium as gym
import numpy as np
import pytest
import stable_retro

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_envs import FakeEmulator  # noqa: E402

import env  # noqa: E402

ROM = pytest.mark.skipif(not env.rom_imported(env.SONIC_GAME),
                         reason="Sonic ROM not imported: python -m stable_retro.import DIR")


def layer(wrapped, kind):
    """The wrapper of type `kind` inside `wrapped`."""
    while not isinstance(wrapped, kind):
        wrapped = wrapped.env
    return wrapped


# ----------------------------------------------------------------------------- everywhere

def test_stable_retro_ships_the_contest_scenario_for_sonic():
    path = stable_retro.data.get_file_path(env.SONIC_GAME, "contest.json", stable_retro.data.Integrations.ALL)
    assert path and os.path.isfile(path)
    with open(path) as fh:
        scenario = json.load(fh)
    assert scenario["reward"] == {"script": "lua:contest_reward"}
    assert scenario["done"] == {"script": "lua:contest_done"}
    folder = os.path.dirname(path)
    with open(os.path.join(folder, scenario["scripts"][0])) as fh:
        script = fh.read()
    assert "function contest_reward" in script and "function contest_done" in script
    assert "* 9000" in script                       # what env.SONIC_FINISH_REWARD stands for
    assert env.SONIC_FINISH_REWARD == 9000.0
    assert os.path.isfile(os.path.join(folder, "rom.sha"))   # what `python -m stable_retro.import` matches


def test_the_sonic_path_builds_the_contest_scenario_with_progress(monkeypatch):
    """With stable_retro.make replaced by a fake emulator: what env.py asks stable-retro for when Sonic is there."""
    calls = []

    def fake_make(game, state=None, **kwargs):
        calls.append(dict(kwargs, game=game, state=state))
        return FakeEmulator(rewards=[900.0, -450.0], episode_frames=8)

    monkeypatch.setattr(env, "rom_imported", lambda game: True)
    monkeypatch.setattr(stable_retro, "make", fake_make)
    assert env.resolve_game("auto") == env.SONIC_GAME
    assert env.fallback_notice("auto", env.SONIC_GAME) == ""
    for idx in (0, 12):
        built = getattr(env, f"make_train_{idx}")()
        call = calls[-1]
        assert call["game"] == env.SONIC_GAME and call["state"] == env.LEVELS[idx]
        assert call["scenario"] == "contest" and call["inttype"] == stable_retro.data.Integrations.ALL
        assert built.observation_space.shape == (96, 96, 4) and built.action_space == gym.spaces.Discrete(7)
        assert layer(built, env.EpisodeStats).finish_reward == env.SONIC_FINISH_REWARD
    built = env.make_test()
    assert calls[-1]["state"] == "GreenHillZone.Act2" and calls[-1]["scenario"] == "contest"
    # 2 agent steps of 4 frames: raw 900 - 450 + 900 - 450 = 900 each; best 1800 of 9000 -> progress 0.2
    built.reset(seed=0)
    built.step(1)
    info = built.step(1)[4]
    assert info["episode"]["r"] == 1800.0 and info["episode"]["progress"] == pytest.approx(0.2)
    # the default game keeps its own scenario
    env.make_retro(env.DEFAULT_GAME, env.DEFAULT_STATE)
    assert calls[-1]["scenario"] is None


# ----------------------------------------------------------------------------- with the ROM

@ROM
@pytest.mark.rom
def test_make_train_0_builds_sonic_with_the_contest_scenario():
    built = env.make_train_0()
    try:
        unwrapped = built.unwrapped
        assert unwrapped.gamename == env.SONIC_GAME
        assert env.LEVELS[0] in str(unwrapped.statename)
        assert built.observation_space.shape == (96, 96, 4) and built.action_space == gym.spaces.Discrete(7)
        obs, _ = built.reset(seed=0)
        assert obs.shape == (96, 96, 4) and obs.dtype == np.uint8
        stats = layer(built, env.EpisodeStats)
        for _ in range(60):                                  # hold RIGHT: Sonic runs to the right
            obs, reward, terminated, truncated, _ = built.step(1)
            assert reward >= 0
            if terminated or truncated:
                break
        assert stats.episode_return > 0                      # raw contest reward: x progress * 9000 / level length
        assert obs.shape == (96, 96, 4) and obs.dtype == np.uint8
    finally:
        built.close()


@ROM
@pytest.mark.rom
def test_make_test_plays_green_hill_zone_act_2():
    built = env.make_test()
    try:
        assert built.unwrapped.gamename == env.SONIC_GAME
        assert "GreenHillZone.Act2" in str(built.unwrapped.statename)
        obs, _ = built.reset(seed=0)
        assert obs.shape == (96, 96, 4)
    finally:
        built.close()


@ROM
@pytest.mark.rom
def test_episode_stats_report_sonic_level_progress():
    base = env.make_retro(env.SONIC_GAME, env.TEST_LEVEL)
    built = env.wrap(base, finish_reward=env.SONIC_FINISH_REWARD, max_episode_steps=80)
    try:
        built.reset(seed=0)
        stats = layer(built, env.EpisodeStats)
        info = {}
        for step in range(80):
            _, _, terminated, truncated, info = built.step(3 if step % 10 == 9 else 1)   # RIGHT, at times RIGHT+DOWN
            if terminated or truncated:
                break
        episode = info["episode"]
        assert 0.0 < episode["progress"] < 1.0
        assert episode["progress"] == pytest.approx(min(1.0, stats.best_return / 9000.0))
        assert episode["l"] <= 80
    finally:
        built.close()
