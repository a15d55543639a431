"""bench/contest.py, the Retro Contest's protocol: its metric (the mean return of every episode of a level's
fine-tuning, then the mean over levels), a tiny contest on the embedded game that is stopped, resumed and counts
each episode once, and one `error:` line for every bad option, with nothing written."""
import json
import math
import os
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "bench", "contest.py")
sys.path.insert(0, os.path.join(REPO, "bench"))

import contest  # noqa: E402


# ----------------------------------------------------------------------------- the metric

def test_the_metric_is_the_mean_over_every_episode_then_over_levels():
    a = [{"r": 100.0, "l": 10, "t": 512, "progress": 0.1}, {"r": 300.0, "l": 20, "t": 1024, "progress": 0.3},
         {"r": 900.0, "l": 5, "t": 1536, "progress": 0.9}]   # t: the run's steps at the end of the episode's update
    b = [{"r": 50.0, "l": 7, "t": 512}]
    # the third episode of `a` ended after the level's checkpoint: a resumed run replays that future
    row_a = contest.level_row("A", a, steps_done=1024, budget=2048)
    assert row_a == {"level": "A", "steps": 1024, "budget": 2048, "episodes": 2, "mean_return": 200.0,
                     "mean_progress": pytest.approx(0.2)}
    assert contest.level_row("A", a, steps_done=1536, budget=1024)["episodes"] == 2   # past the budget: not counted
    assert contest.level_row("A", a, steps_done=1536, budget=2048)["mean_return"] == pytest.approx(1300 / 3)
    row_b = contest.level_row("B", b, steps_done=1024, budget=1024)
    assert row_b["mean_return"] == 50.0 and math.isnan(row_b["mean_progress"])      # no progress: not Sonic
    row_c = contest.level_row("C", [], steps_done=0, budget=1024)                      # not started yet
    assert row_c["episodes"] == 0 and math.isnan(row_c["mean_return"])
    overall = contest.overall_row([row_a, row_b, row_c])
    # the mean of the levels' means (200 and 50), not of the episodes (150); a level without episodes left out
    assert overall == {"level": "overall", "steps": 2048, "budget": 4096, "episodes": 3, "mean_return": 125.0,
                       "mean_progress": pytest.approx(0.2)}
    text = contest.format_results([row_a, row_b, row_c, overall])
    assert text.splitlines()[-1].split() == ["overall", "2,048", "of", "4,096", "3", "125.0", "0.200"]
    assert text.splitlines()[4].split()[-2:] == ["-", "-"]                              # level C: no number


# ----------------------------------------------------------------------------- a real tiny contest

def untrained_checkpoint(folder) -> str:
    """A full checkpoint of this project (weights and Adam slots) of an untrained model. -> its TF prefix."""
    import gymnasium as gym
    import numpy as np
    import tensorflow.compat.v1 as tf

    from architecture import A2CPolicy
    from config import TrainConfig
    from model import Model, model_options
    prefix = str(folder / "model.ckpt")
    config = TrainConfig()
    with tf.Graph().as_default(), tf.Session() as sess, sess.as_default():
        Model(A2CPolicy, gym.spaces.Box(0, 255, (96, 96, 4), np.uint8), gym.spaces.Discrete(7), 1, 1, config.ent_coef,
              config.vf_coef, config.max_grad_norm, **model_options(config)).save(prefix)
    return prefix


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


@pytest.mark.slow
def test_a_stopped_contest_resumes_and_scores_every_episode_once(tmp_path, monkeypatch, capsys):
    """2 envs x 256 steps, 3 updates on the embedded game: Ctrl-C after update 2, an episode recorded after the
    checkpoint (as a kill between the record and the save leaves), then the same command again: the level ends
    at its budget, the episodes before the stop are kept, the one after is dropped, and the table's mean is
    the mean of the recorded episodes. A third run redoes nothing."""
    from checkpoint import load_state, read_pointer
    out = tmp_path / "out"
    argv = ["--checkpoint", untrained_checkpoint(tmp_path), "--levels", "default", "--steps", "1536", "--num-envs",
            "2", "--nsteps", "256", "--out", str(out)]
    record_update = contest.record_update

    def stop_after_update_2(record, stats, path):
        record_update(record, stats, path)
        if stats["update"] == 2:
            os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C: the update ends, is saved, the contest stops

    monkeypatch.setattr(contest, "record_update", stop_after_update_2)
    assert contest.main(argv) == 130
    monkeypatch.setattr(contest, "record_update", record_update)
    episodes_file, checkpoints = out / "episodes" / "Level1.json", out / "runs" / "Level1" / "checkpoints"
    stopped = read_json(episodes_file)
    assert stopped["timesteps"] == 1024 and load_state(checkpoints / "000002")["training"]["timesteps"] == 1024
    assert stopped["episodes"], "no episode ended in 512 steps of each env"
    future = dict(stopped, timesteps=1536, episodes=stopped["episodes"] + [{"r": -1.0, "l": 1, "t": 1536}])
    episodes_file.write_text(json.dumps(future))
    names = read_variable_names(out / "init" / "model.ckpt")      # what each level starts from: weights only
    assert "model/pi/w" in names and not any("Adam" in name for name in names)
    capsys.readouterr()

    assert contest.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"resuming at 1,024 steps with {len(stopped['episodes'])} episodes recorded" in printed
    assert "not comparable" in printed and "about 7,400" in printed
    record = read_json(episodes_file)
    assert record["timesteps"] == 1536 and {e["t"] for e in record["episodes"]} <= {512, 1024, 1536}
    assert [e for e in record["episodes"] if e["t"] <= 1024] == stopped["episodes"]   # kept, and the -1 dropped
    assert load_state(checkpoints / read_pointer(checkpoints / "latest"))["training"]["timesteps"] == 1536
    row = read_json(out / "results.json")["table"][0]
    returns = [e["r"] for e in record["episodes"]]
    assert (row["level"], row["steps"], row["budget"], row["episodes"]) == ("Level1", 1536, 1536, len(returns))
    assert math.isfinite(row["mean_return"]) and row["mean_return"] == pytest.approx(sum(returns) / len(returns))
    assert (out / "results.csv").read_text().splitlines()[1].startswith("Level1,1536,1536,")

    before = sorted(os.listdir(checkpoints))
    assert contest.main(argv) == 0
    assert "level Level1: done (1,536 steps), kept" in capsys.readouterr().out
    assert sorted(os.listdir(checkpoints)) == before and read_json(out / "results.json")["table"][0] == row


def read_variable_names(prefix) -> list:
    import tensorflow.compat.v1 as tf
    return list(tf.train.load_checkpoint(str(prefix)).get_variable_to_shape_map())


# ----------------------------------------------------------------------------- bad input

def fake_checkpoint(tmp_path) -> str:
    """A path that resolve_checkpoint accepts (its .index exists); never loaded by these tests."""
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "model.ckpt.index").write_bytes(b"")
    return str(tmp_path / "ck" / "model.ckpt")


def another_contest(out, prefix) -> None:
    (out / "init").mkdir(parents=True)
    (out / "init" / "source.json").write_text(json.dumps({"checkpoint": "/elsewhere/model.ckpt"}))


def other_settings(out, prefix) -> None:
    checkpoints = out / "runs" / "Level1" / "checkpoints"
    (checkpoints / "000001").mkdir(parents=True)
    (checkpoints / "latest").write_text("000001")
    (out / "runs" / "Level1" / "config.json").write_text(json.dumps({"nsteps": 64}))
    (out / "init").mkdir()
    (out / "init" / "source.json").write_text(json.dumps({"checkpoint": os.path.abspath(prefix)}))


TINY = ["--levels", "default", "--num-envs", "2", "--nsteps", "128"]


@pytest.mark.parametrize("argv, prepare, message", [
    (["--steps", "0", *TINY], None, "--steps must be positive, got 0"),
    (["--steps", "-4096", *TINY], None, "--steps must be positive"),
    (["--steps", "255", *TINY], None, "--steps 255 is less than one update (--num-envs 2 x --nsteps 128 = 256)"),
    (["--steps", "1024", "--num-envs", "0", "--levels", "default"], None, "--num-envs must be positive"),
    (["--steps", "1024", "--nminibatches", "3", *TINY], None, "not divisible by --nminibatches 3"),
    (["--steps", "1024", "--seed", "-1", *TINY], None, "--seed must be 0 or more"),
    (["--steps", "8192", "--levels", "NoSuchLevel"], None, "unknown state 'NoSuchLevel'"),
    (["--steps", "1024", *TINY, "--checkpoint", "no/such/checkpoint"], None, "not found"),
    (["--steps", "1024", *TINY], another_contest, "holds the contest of /elsewhere/model.ckpt"),
    (["--steps", "1024", *TINY], other_settings, "nsteps 64 -> 128"),
])
def test_a_bad_option_is_one_error_line_and_writes_nothing(tmp_path, capsys, argv, prepare, message):
    prefix = fake_checkpoint(tmp_path)
    out = tmp_path / "out"
    if prepare:
        prepare(out, prefix)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert contest.main(["--checkpoint", prefix, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_held_out_levels_without_the_rom_are_one_line_that_says_what_to_do(tmp_path):
    import env as envs
    if envs.rom_imported(envs.SONIC_GAME):
        pytest.skip("the Sonic ROM is imported: --levels held-out runs the real protocol")
    result = subprocess.run([sys.executable, SCRIPT, "--checkpoint", "latest", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "needs the Sonic ROM" in result.stderr and "python -m stable_retro.import" in result.stderr
    assert "`--levels default` runs the same protocol on the embedded game" in result.stderr
    assert not (tmp_path / "out").exists()
