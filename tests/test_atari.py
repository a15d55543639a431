"""The Atari family through the project's chain (env.make_level on `ALE/<Name>-v5`, ale-py's own ROMs): the
observation and action shapes, ALE's sticky actions and frame skip, the lives flag, the reward rule and the
episode statistics, on a real game for a few hundred steps; a bad game id is one line."""
import numpy as np
import pytest

import env

GAME = "ALE/SpaceInvaders-v5"   # 3 lives, 6 actions; random play loses a life within a few hundred steps


@pytest.fixture(scope="module")
def space_invaders():
    built = env.make_level(env.resolve_game(GAME), env.ATARI_LEVEL)
    yield built
    built.close()


def ale_of(wrapped):
    """The gymnasium AtariEnv under the project's wrappers."""
    return wrapped.unwrapped


def test_the_chain_gives_stacked_gray_frames_and_the_games_own_actions(space_invaders):
    obs, info = space_invaders.reset(seed=0)
    assert obs.shape == (96, 96, 4) and obs.dtype == np.uint8
    assert space_invaders.observation_space.shape == (96, 96, 4)
    assert space_invaders.action_space.n == 6                    # the minimal action set of Space Invaders
    assert np.array_equal(obs[..., 0], obs[..., 3])               # a reset repeats its first frame
    spec = ale_of(space_invaders).spec.kwargs
    assert (spec["frameskip"], spec["repeat_action_probability"], spec["full_action_space"]) == (4, 0.25, False)
    assert env.default_levels(GAME) == [env.ATARI_LEVEL] and env.game_levels(GAME) == [env.ATARI_LEVEL]


def test_lives_rewards_and_episode_statistics_over_a_few_hundred_steps(space_invaders):
    """Random play: the step whose ALE life count fell is flagged (and no other), the learner's reward is the
    game's times 0.01, and the episode's statistics count the game's own score and the agent steps."""
    space_invaders.reset(seed=1)
    rng = np.random.default_rng(1)
    lives_seen, flagged, raw_total, scaled_total, steps = [], [], 0.0, 0.0, 0
    lives = ale_of(space_invaders).ale.lives()
    for _ in range(2000):
        before = ale_of(space_invaders).ale.lives()
        obs, reward, terminated, truncated, info = space_invaders.step(int(rng.integers(6)))
        steps += 1
        scaled_total += reward
        lives_seen.append(info["lives"])
        if info.get("life_lost"):
            flagged.append(steps)
            assert info["lives"] == before - 1
        else:
            assert info["lives"] == before
        if terminated or truncated:
            episode = info["episode"]
            assert episode["l"] == steps and episode["level"] == env.ATARI_LEVEL
            raw_total = episode["r"]
            break
    assert flagged, "random play lost no life in 2,000 steps"
    assert len(flagged) == lives - min(lives_seen)
    if terminated or truncated:
        assert scaled_total == pytest.approx(0.01 * raw_total)
        assert raw_total > 0


def test_the_step_limit_is_27000_agent_steps():
    built = env.make_level(GAME, env.ATARI_LEVEL)
    try:
        limits = [w for w in iter_wrappers(built) if type(w).__name__ == "TimeLimit"]
        assert [w._max_episode_steps for w in limits] == [env.ATARI_MAX_EPISODE_STEPS]
    finally:
        built.close()


def iter_wrappers(wrapped):
    while hasattr(wrapped, "env"):
        yield wrapped
        wrapped = wrapped.env


def test_an_unknown_atari_game_is_one_line_that_says_what_is_valid():
    with pytest.raises(env.GameError, match=r"unknown Atari game 'ALE/NoSuchGame-v5': give ALE/<Name>-v5 with a "
                                            r"game ale-py ships, such as ALE/Pong-v5"):
        env.resolve_game("ALE/NoSuchGame-v5")
    with pytest.raises(env.GameError, match="unknown state 'Level2' for ALE/SpaceInvaders-v5: valid states are "
                                            "Default"):
        env.check_levels(GAME, ["Level2"])


@pytest.mark.slow
def test_agent_py_trains_an_atari_game_and_play_py_plays_it(tmp_path):
    """Two updates of 2 envs x 32 steps on Space Invaders through agent.py, then play.py and evaluate.py on its
    checkpoint."""
    from robustness_helpers import run_script
    where = ["--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "models")]
    trained = run_script("agent.py", "--game", GAME, "--num-envs", "2", "--nsteps", "32", "--nminibatches", "2",
                         "--total-timesteps", "128", "--run-name", "a", "--no-progress", *where, timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert f"game {GAME}, levels Default; 2 envs" in trained.stdout
    played = run_script("play.py", "--game", GAME, "--models-dir", str(tmp_path / "models"), "--no-window",
                        timeout=300)
    assert played.returncode == 0 and "mean score over 1 episode(s)" in played.stdout, played.stderr[-2000:]
    scored = run_script("evaluate.py", "--game", GAME, "--levels", "Default", "--episodes", "1", "--models-dir",
                        str(tmp_path / "models"), timeout=300)
    assert scored.returncode == 0 and "overall" in scored.stdout, scored.stderr[-2000:]
