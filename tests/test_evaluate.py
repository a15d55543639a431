"""evaluate.py: the evaluation core against a hand-written loop, the table, the named level sets, the errors."""
import csv
import json
import math

import numpy as np
import pytest

import env as envs
import evaluate
from eval_fake_envs import make_score_level, obs_act, score_level_factories

EPISODES = 4
SEED = 7


def vec_player(act):
    """play_episodes(venv, episodes=n) for evaluate_levels: `act` on the one-env vector env until n episodes end."""
    def play_episodes(venv, episodes):
        finished, obs = [], venv.reset()                     # obs [1, 96, 96, 4]
        while len(finished) < episodes:
            obs, _rewards, _dones, infos = venv.step(act(obs))
            finished.extend(info["episode"] for info in infos if "episode" in info)
        return finished
    return play_episodes


def hand_loop(factory, act, episodes, seed):
    """The reference: one gymnasium env, seeded on its first reset only, reset by hand after each episode."""
    env = factory()
    obs, _ = env.reset(seed=seed)
    finished = []
    while len(finished) < episodes:
        obs, _reward, terminated, truncated, info = env.step(int(act(obs[None])[0]))
        if terminated or truncated:
            finished.append(info["episode"])
            obs, _ = env.reset()
    env.close()
    return finished


def test_evaluation_matches_a_hand_written_loop():
    factories = score_level_factories(finish_reward=500.0)
    played = evaluate.evaluate_levels(factories, vec_player(obs_act), EPISODES, seed=SEED)
    assert list(played) == list(factories)
    for level, factory in factories.items():
        assert played[level] == hand_loop(factory, obs_act, EPISODES, SEED)

    rows = evaluate.score_table(played)
    assert [row["level"] for row in rows] == [*factories, evaluate.OVERALL]
    for row in rows:
        episodes = played[row["level"]] if row["level"] in played else [e for v in played.values() for e in v]
        scores = np.array([e["r"] for e in episodes])
        assert row["episodes"] == len(episodes)
        assert row["mean"] == pytest.approx(scores.mean(), rel=1e-12)
        assert row["std"] == pytest.approx(scores.std(), rel=1e-12)
        assert (row["min"], row["max"]) == (scores.min(), scores.max())
        assert row["mean_length"] == pytest.approx(np.mean([e["l"] for e in episodes]), rel=1e-12)
        assert row["mean_progress"] == pytest.approx(np.mean([min(1.0, e["r"] / 500.0) for e in episodes]))
    # the levels really score differently, and the overall row is the mean over every episode
    assert rows[0]["mean"] < rows[1]["mean"] < rows[2]["mean"]
    assert rows[-1]["mean"] == pytest.approx(np.mean([r["mean"] for r in rows[:-1]]))


def test_the_seed_reaches_the_environment():
    factory = score_level_factories()["Fake.Act1"]
    played = evaluate.evaluate_levels({"Fake.Act1": factory}, vec_player(obs_act), EPISODES, seed=SEED)
    assert played["Fake.Act1"] != hand_loop(factory, obs_act, EPISODES, SEED + 1)


def test_summary_of_known_episodes_and_missing_progress():
    row = evaluate.summarise("L", [{"r": 1.0, "l": 10}, {"r": 3.0, "l": 20}, {"r": 8.0, "l": 30}])
    progress = row.pop("mean_progress")
    assert row == {"level": "L", "episodes": 3, "mean": 4.0, "std": pytest.approx(math.sqrt(26 / 3)),
                   "min": 1.0, "max": 8.0, "mean_length": 20.0}
    assert math.isnan(progress)                                     # not Sonic: the episodes carry none


def test_table_text_and_files_have_the_columns(tmp_path):
    played = evaluate.evaluate_levels(score_level_factories(), vec_player(obs_act), 2, seed=SEED)
    rows = evaluate.score_table(played)
    lines = evaluate.format_score_table(rows).splitlines()
    assert lines[0].split() == evaluate.COLUMNS
    assert [line.split()[0] for line in lines if not line.startswith("-")][1:] == [*played, "overall"]

    csv_path = tmp_path / "eval.csv"
    evaluate.write_results(str(csv_path), rows, played, {})
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        written = list(reader)
    assert reader.fieldnames == evaluate.COLUMNS
    assert [r["level"] for r in written] == [*played, "overall"]
    assert [float(r["mean"]) for r in written] == [r["mean"] for r in rows]
    assert all(r["mean_progress"] == "" for r in written)          # not Sonic: no progress

    json_path = tmp_path / "eval.json"
    evaluate.write_results(str(json_path), rows, played, {"checkpoint": "ck"})
    data = json.loads(json_path.read_text())
    assert data["checkpoint"] == "ck"
    assert [r["level"] for r in data["table"]] == [*played, "overall"]
    assert data["episodes"] == {level: episodes for level, episodes in played.items()}


@pytest.fixture
def sonic_rom(monkeypatch):
    """Pretend the Sonic ROM is (True) or is not (False) imported, whatever this machine holds."""
    def set_imported(imported: bool):
        monkeypatch.setattr(envs, "rom_imported", lambda game: imported if game == envs.SONIC_GAME else True)
    return set_imported


def test_named_sets_resolve_to_their_levels(sonic_rom):
    sonic_rom(True)
    assert evaluate.resolve_level_set("train") == (envs.SONIC_GAME, envs.LEVELS)
    assert evaluate.resolve_level_set("held-out") == (envs.SONIC_GAME, envs.HELD_OUT_LEVELS)
    assert evaluate.resolve_level_set("held-out")[1] == ["SpringYardZone.Act1", "GreenHillZone.Act2",
                                                         "StarLightZone.Act3", "ScrapBrainZone.Act1"]
    assert evaluate.resolve_level_set("default") == (envs.DEFAULT_GAME, [envs.DEFAULT_STATE])
    assert evaluate.resolve_level_set("auto") == (envs.SONIC_GAME, envs.HELD_OUT_LEVELS)
    assert evaluate.resolve_level_set("GreenHillZone.Act1, MarbleZone.Act2") == (
        envs.SONIC_GAME, ["GreenHillZone.Act1", "MarbleZone.Act2"])
    sonic_rom(False)
    assert evaluate.resolve_level_set("auto") == (envs.DEFAULT_GAME, [envs.DEFAULT_STATE])
    assert evaluate.resolve_level_set("Level1") == (envs.DEFAULT_GAME, ["Level1"])


@pytest.mark.parametrize("levels", ["train", "held-out", "GreenHillZone.Act2"])
def test_sonic_set_without_the_rom_is_one_clear_error(sonic_rom, capsys, levels):
    sonic_rom(False)
    assert evaluate.main(["--levels", levels, "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the Sonic ROM is not imported")
    assert "python -m stable_retro.import" in err


@pytest.mark.parametrize("argv, message", [
    (["--levels", "NoSuchLevel"], "unknown state 'NoSuchLevel'"),
    (["--levels", "default", "--episodes", "0"], "--episodes must be positive"),
    (["--levels", "default", "--out", "scores.txt"], "must end in .csv or .json"),
    (["--levels", "default", "--checkpoint", "no/such/checkpoint"], "not found"),
])
def test_bad_options_are_one_clear_error(capsys, argv, message):
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


@pytest.mark.slow
def test_script_scores_a_real_checkpoint(tmp_path, monkeypatch, capsys):
    """The whole script with model.play and a saved (untrained) A2C checkpoint, on the fake levels: the
    episode lengths do not depend on the policy, so they must equal the hand-written loop's."""
    import tensorflow.compat.v1 as tf
    from architecture import A2CPolicy
    from model import Model
    probe = make_score_level()
    prefix = str(tmp_path / "ck" / "model.ckpt")
    with tf.Graph().as_default(), tf.Session() as sess, sess.as_default():
        Model(A2CPolicy, probe.observation_space, probe.action_space, 1, 1, 0.01, 0.5, 0.5).save(prefix)
    factories = score_level_factories(finish_reward=500.0)
    monkeypatch.setattr(evaluate, "level_factories", lambda game, levels: factories)
    out = tmp_path / "eval.json"
    argv = ["--checkpoint", prefix, "--levels", "default", "--episodes", "2", "--deterministic",
            "--seed", str(SEED), "--out", str(out)]
    assert evaluate.main(argv) == 0
    stdout = capsys.readouterr().out
    assert stdout.splitlines()[-1] == f"wrote {out}"
    data = json.loads(out.read_text())
    for level, factory in factories.items():
        expected = hand_loop(factory, obs_act, 2, SEED)
        assert [e["l"] for e in data["episodes"][level]] == [e["l"] for e in expected]
    assert [r["level"] for r in data["table"]] == [*factories, "overall"]
    assert evaluate.main(argv) == 0                     # deterministic actions, same seed: the same scores
    assert json.loads(out.read_text())["episodes"] == data["episodes"]
