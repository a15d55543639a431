"""monitor.py and what a run shows of itself: held-out evaluations (--eval-every) and the best checkpoint they
choose, each level's figures on a run over several levels (and plot.py --levels), videos (--video-every), the
policy-collapse warning; export.py and the shipped agent of play.py / evaluate.py."""
import csv
import glob
import io
import math
import os

import numpy as np
import pytest

from fake_envs import LEVEL_FINISH, LEVEL_FRAMES, LEVEL_REWARD, fake_level_fns, make_fake_level
from robustness_helpers import call_bounded, read_pointer, run_script

tf = pytest.importorskip("tensorflow.compat.v1")
import monitor  # noqa: E402


def read_table(run_dir) -> list:
    """progress.csv -> rows as column -> float (an empty cell as NaN)."""
    with open(os.path.join(run_dir, "progress.csv"), newline="") as fh:
        return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in csv.DictReader(fh)]


def read_event_values(run_dir) -> dict:
    """(step, tag) -> the Summary.Value of every event file of run_dir."""
    values = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                values[(event.step, value.tag)] = value
    return values


class UniformPolicy:
    """step_neglogp as A2CPolicy answers it, with uniform logits over 7 actions: actions come from `rngs` alone."""

    def step_neglogp(self, obs, rngs):
        from architecture import sample_actions
        actions = sample_actions(np.zeros((len(obs), 7), np.float32), rngs)
        return actions, np.zeros(len(obs), np.float32), np.full(len(obs), math.log(7), np.float32)


# ----------------------------------------------------------------------------- policy collapse

def test_collapse_warning_below_the_floor_once_and_on_a_halving():
    watch = monitor.CollapseWatch(nactions=7, fraction=0.1)        # floor 0.1 * ln 7 = 0.1946
    said = [watch.check(entropy) for entropy in (1.9, 0.9, 0.8, 0.15, 0.1, 0.5, 0.15, 0.3)]
    assert said[0] is None and said[2] is None
    assert said[1].startswith("warning: policy entropy fell from 1.9 to 0.9 in one update")
    assert said[3].startswith("warning: policy entropy 0.15 is below 10% of its maximum ln(actions) = 1.95")
    assert said[4] is None                                          # still below: said once
    assert said[5] is None                                          # above again, and not halved (0.1 -> 0.5)
    assert said[6].startswith("warning: policy entropy 0.15 is below 10%")   # below again: said again
    assert said[7] is None
    assert all("--ent-coef" in line for line in said if line)
    off = monitor.CollapseWatch(nactions=7, fraction=0.0)
    assert [off.check(e) for e in (1.9, 0.01, 0.001)] == [None, None, None]


def test_a_collapse_warning_is_a_line_and_a_tensorboard_text(tmp_path):
    from logger import RunLogger
    stream = io.StringIO()
    logger = RunLogger(str(tmp_path), total_timesteps=100, stream=stream)
    logger.warn("warnings/policy_collapse", "warning: policy entropy 0.1 is below 10%", 64)
    logger.close()
    assert stream.getvalue() == "warning: policy entropy 0.1 is below 10%\n"
    value = read_event_values(tmp_path)[(64, "warnings/policy_collapse")]
    assert value.metadata.plugin_data.plugin_name == "text"
    assert tf.make_ndarray(value.tensor).item() == b"warning: policy entropy 0.1 is below 10%"


@pytest.mark.slow
def test_training_warns_when_the_entropy_falls_below_the_floor(tmp_path):
    """A floor just under the maximum entropy: the first update that lowers the entropy under it is warned of,
    once, and the warning is in TensorBoard's text."""
    from architecture import A2CPolicy
    from config import TrainConfig
    from fake_envs import bandit_fns
    from model import train
    from vec_env import DummyVecEnv
    config = TrainConfig(num_envs=2, nsteps=16, nminibatches=2, total_timesteps=96, log_interval=1, lr=1e-3,
                         collapse_warning=0.9999, runs_dir=str(tmp_path / "runs"), models_dir=str(tmp_path / "models"),
                         progress=False)
    stream = io.StringIO()
    run = train(A2CPolicy, DummyVecEnv(bandit_fns(2)), config, run_dir=str(tmp_path / "runs" / "r"), stream=stream)
    warnings = [line for line in stream.getvalue().splitlines() if line.startswith("warning: policy entropy")]
    assert len(warnings) == 1 and "below 100% of its maximum ln(actions) = 1.95" in warnings[0], warnings
    texts = [v for (step, tag), v in read_event_values(run).items() if tag == "warnings/policy_collapse"]
    assert len(texts) == 1


# ----------------------------------------------------------------------------- held-out evaluation

def test_evaluation_plays_each_level_its_episodes_in_batches(monkeypatch):
    """Two levels x 3 episodes on fake levels whose returns are known (A: 40, B: 80 per episode; progress 0.4 and
    0.8 of the level), played 4 envs at a time: the means pool every episode, each level has its own."""
    import env
    monkeypatch.setattr(monitor, "MAX_EVAL_ENVS", 4)
    evaluation = monitor.Evaluation(env.SONIC_GAME, ["A", "B"], episodes=3, seed=0, make_level=make_fake_level)
    assert evaluation.jobs == ["A", "A", "A", "B", "B", "B"]
    figures = evaluation.run(UniformPolicy())
    a_return, b_return = LEVEL_FRAMES * LEVEL_REWARD["A"], LEVEL_FRAMES * LEVEL_REWARD["B"]
    assert figures["eval_return_mean"] == pytest.approx((a_return + b_return) / 2)
    assert figures["eval_progress_mean"] == pytest.approx((a_return + b_return) / 2 / LEVEL_FINISH)
    assert figures["eval/A/return_mean"] == a_return and figures["eval/B/return_mean"] == b_return
    assert figures["eval/A/progress_mean"] == pytest.approx(0.4) and figures["eval/B/episodes"] == 3
    assert figures["eval_seconds"] > 0
    assert evaluation.columns() == ["eval_return_mean", "eval_progress_mean", "eval_seconds"]


@pytest.mark.slow
def test_an_evaluation_of_the_same_weights_gives_the_same_episodes():
    """The default game, 2 episodes: the same seeds every time, so two evaluations of one policy agree to the
    last digit; another seed plays other episodes."""
    import env
    game, levels = monitor.evaluation_levels("auto", env.DEFAULT_GAME)
    assert (game, levels) == (env.DEFAULT_GAME, [env.DEFAULT_STATE])
    first = monitor.Evaluation(game, levels, episodes=2, seed=3).run(UniformPolicy())
    again = monitor.Evaluation(game, levels, episodes=2, seed=3).run(UniformPolicy())
    other = monitor.Evaluation(game, levels, episodes=2, seed=4).run(UniformPolicy())
    assert first["eval_return_mean"] == again["eval_return_mean"] > 0
    assert "eval_progress_mean" not in first                        # not Sonic: no fraction of a level
    assert other["eval_return_mean"] != first["eval_return_mean"]


def test_evaluation_levels_resolve_as_evaluate_py_reads_them():
    import env
    from errors import ConfigError, GameError
    assert monitor.evaluation_levels("auto", env.SONIC_GAME) == (env.SONIC_GAME, env.HELD_OUT_LEVELS)
    assert monitor.evaluation_levels("default", env.DEFAULT_GAME) == (env.DEFAULT_GAME, [env.DEFAULT_STATE])
    assert monitor.evaluation_levels(" Level1 ,", env.DEFAULT_GAME) == (env.DEFAULT_GAME, ["Level1"])
    with pytest.raises(GameError, match="unknown state 'Nope'"):
        monitor.evaluation_levels("Nope", env.DEFAULT_GAME)
    with pytest.raises(ConfigError, match="give 'auto'"):
        monitor.evaluation_levels(" , ", env.DEFAULT_GAME)
    if not env.rom_imported(env.SONIC_GAME):
        with pytest.raises(GameError, match="the Sonic ROM is not imported"):
            monitor.evaluation_levels("held-out", env.DEFAULT_GAME)


def agent_run(tmp_path, *options, run="r"):
    """agent.main on the default game with tiny settings -> (exit code, run folder)."""
    import agent
    base = ["--num-envs", "2", "--nsteps", "32", "--nminibatches", "2", "--noptepochs", "1", "--run-name", run,
            "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "models"), "--no-progress",
            "--tf-threads", "1"]
    code = call_bounded(lambda: agent.main(base + list(options)), 300)
    return code, str(tmp_path / "runs" / run)


@pytest.mark.slow
def test_eval_every_logs_the_evaluations_and_best_names_the_best_evaluated_checkpoint(tmp_path, capsys):
    """--eval-every 2 over 3 updates (a row every update): updates 2 and 3 (the last) are evaluated, update 1's
    row has no evaluation; `best` names the evaluated checkpoint of the higher score; TensorBoard has them; a
    resume goes on evaluating."""
    code, run = agent_run(tmp_path, "--total-timesteps", "192", "--log-interval", "1", "--eval-every", "2",
                          "--eval-episodes", "1")
    assert code == 0
    rows = read_table(run)
    assert [row["nupdates"] for row in rows] == [1, 2, 3]
    assert math.isnan(rows[0]["eval_return_mean"]) and math.isnan(rows[0]["eval_seconds"])
    scores = {int(row["nupdates"]): row["eval_return_mean"] for row in rows[1:]}
    assert all(score > 0 for score in scores.values()) and all(row["eval_seconds"] > 0 for row in rows[1:])
    best = max(scores, key=lambda update: (scores[update], -update))
    assert read_pointer(os.path.join(run, "checkpoints", "best")) == f"{best:06d}"
    printed = capsys.readouterr().out
    assert printed.count("evaluation: mean return") == 2 and "over 1 episodes of Level1" in printed
    events = read_event_values(run)
    assert events[(128, "eval/return_mean")].simple_value == np.float32(scores[2])
    assert (64, "eval/return_mean") not in events or math.isnan(events[(64, "eval/return_mean")].simple_value)

    code, _ = agent_run(tmp_path, "--resume", run, "--total-timesteps", "256", "--log-interval", "1",
                        "--eval-every", "2", "--eval-episodes", "1")
    assert code == 0
    rows = read_table(run)
    assert [row["nupdates"] for row in rows] == [1, 2, 3, 4]
    assert rows[3]["eval_return_mean"] > 0 and [r["eval_return_mean"] for r in rows[1:3]] == list(scores.values())


@pytest.mark.slow
def test_video_every_writes_a_gif_of_one_episode_and_puts_it_in_tensorboard(tmp_path, capsys):
    from PIL import Image
    code, run = agent_run(tmp_path, "--total-timesteps", "64", "--video-every", "1")
    assert code == 0
    path = os.path.join(run, "videos", "update_000001.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (160, 112)      # the emulator's 320 x 224, halved
        frames = gif.n_frames
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("video: ")][0]
    steps = int(line.split(" steps)")[0].rsplit(", ", 1)[1])
    # every 3rd emulator frame of the episode: 4 per agent step, plus the reset frame (a GIF merges equal ones)
    assert 0.5 * (4 * steps + 1) / 3 <= frames <= (4 * steps + 1) / 3 + 1, (frames, steps)
    image = read_event_values(run)[(64, "videos/policy")].image
    assert (image.width, image.height) == (160, 112)
    with open(path, "rb") as fh:
        assert image.encoded_image_string == fh.read()


def test_a_video_sink_writes_the_first_episode_only(tmp_path):
    """VideoSink: every 3rd frame at half size; written when the env resets after the first episode."""
    from fake_envs import fake_frame
    path = str(tmp_path / "v.gif")
    sink = monitor.VideoSink(path)
    sink.new_episode(fake_frame(0))
    for k in range(1, 10):
        sink.add(fake_frame(k))
    assert not os.path.exists(path)
    sink.new_episode(fake_frame(0))                                 # the episode ended: written now
    for k in range(1, 7):
        sink.add(fake_frame(k))
    sink.new_episode(fake_frame(0))
    from PIL import Image
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (160, 112)         # frames 0, 3, 6, 9 of the first episode
        gif.seek(1)
        first = np.asarray(gif.convert("RGB"))
    # frame 3 at half size (GIF quantises colours: compare loosely)
    assert np.abs(first.astype(int) - fake_frame(3)[::2, ::2].astype(int)).mean() < 20


# ----------------------------------------------------------------------------- per-level figures

def test_training_level_figures_only_for_several_levels():
    episodes = {"A": [{"r": 40.0, "l": 10, "progress": 0.4}, {"r": 20.0, "l": 5, "progress": 0.2}],
                "B": [{"r": 80.0, "l": 10, "progress": 0.8}]}
    assert monitor.training_level_figures({"A": episodes["A"]}) == {}
    figures = monitor.training_level_figures(episodes)
    assert figures == {"levels/A/return_mean": 30.0, "levels/A/progress_mean": pytest.approx(0.3),
                       "levels/A/episodes": 2, "levels/B/return_mean": 80.0, "levels/B/progress_mean": 0.8,
                       "levels/B/episodes": 1}
    plain = monitor.training_level_figures({"A": [{"r": 1.0, "l": 1}], "B": [{"r": 3.0, "l": 1}]})
    assert plain == {"levels/A/return_mean": 1.0, "levels/A/episodes": 1, "levels/B/return_mean": 3.0,
                     "levels/B/episodes": 1}


@pytest.mark.slow
def test_a_run_over_two_levels_logs_each_level_and_plot_draws_them(tmp_path, capsys):
    """Fake levels A and B (returns 40 and 80, progress 0.4 and 0.8) in env processes: progress.csv and
    TensorBoard get levels/<name>/..., the windows survive a resume, and plot.py --levels draws one line each."""
    from architecture import A2CPolicy
    from config import TrainConfig
    from model import train
    from vec_env import SubprocVecEnv
    import plot

    def run(total, resume_from=None):
        config = TrainConfig(num_envs=2, nsteps=32, nminibatches=2, noptepochs=1, total_timesteps=total,
                             log_interval=1, runs_dir=str(tmp_path / "runs"), models_dir=str(tmp_path / "models"),
                             progress=False)
        venv = SubprocVecEnv(fake_level_fns(["A", "B"]), seed=0)
        try:
            return train(A2CPolicy, venv, config, run_dir=str(tmp_path / "runs" / "r"), resume_from=resume_from)
        finally:
            venv.close()

    run_dir = run(128)
    rows = read_table(run_dir)
    for row in rows:
        assert row["levels/A/return_mean"] == 40.0 and row["levels/B/return_mean"] == 80.0
        assert row["levels/A/progress_mean"] == pytest.approx(0.4) and row["levels/B/progress_mean"] == pytest.approx(0.8)
    assert [row["levels/A/episodes"] for row in rows] == [3, 6]     # 32 steps of 10-step episodes per update
    events = read_event_values(run_dir)
    assert events[(128, "levels/B/return_mean")].simple_value == 80.0
    run(192, resume_from=os.path.join(run_dir, "checkpoints", "000002"))
    assert [row["levels/A/episodes"] for row in read_table(run_dir)] == [3, 6, 9]   # the window came back

    out = tmp_path / "levels.png"
    assert plot.main([run_dir, "--levels", "-o", str(out), "--smooth", "1"]) == 0
    figure = plot.make_levels_figure("r", plot.read_progress(run_dir), window=1)
    returns_axes, progress_axes = figure.axes
    assert [line.get_label() for line in returns_axes.get_lines()] == ["A", "B"]
    np.testing.assert_allclose(returns_axes.get_lines()[1].get_ydata(), [80.0, 80.0, 80.0])
    assert "fraction of the level reached" in progress_axes.get_title()


# ----------------------------------------------------------------------------- export and the shipped agent

@pytest.mark.slow
def test_export_keeps_the_weights_alone_and_they_act_as_the_checkpoint(tmp_path):
    import export
    code, run = agent_run(tmp_path, "--total-timesteps", "64")
    assert code == 0
    out = tmp_path / "agent"
    assert export.main([run, str(out)]) == 0
    source = os.path.join(run, "checkpoints", "000001", "model.ckpt")
    stored = tf.train.load_checkpoint(str(out / "model.ckpt")).get_variable_to_shape_map()
    full = tf.train.load_checkpoint(source).get_variable_to_shape_map()
    assert set(stored) == {name for name in full if name.startswith("model/") and "Adam" not in name}
    assert sorted(os.listdir(out)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    for name in stored:
        np.testing.assert_array_equal(tf.train.load_checkpoint(str(out / "model.ckpt")).get_tensor(name),
                                      tf.train.load_checkpoint(source).get_tensor(name))


def test_play_without_a_trained_agent_plays_the_shipped_one_on_its_game_only(tmp_path):
    import env
    from checkpoint import SHIPPED_AGENT, NoCheckpointError, resolve_watched
    if not os.path.isfile(os.path.join(SHIPPED_AGENT, "model.ckpt.index")):
        pytest.fail("models/airstriker/model.ckpt is not in the checkout: the shipped agent is missing")
    prefix, notice = resolve_watched("latest", str(tmp_path / "models"), env.DEFAULT_GAME)
    assert prefix == os.path.join(SHIPPED_AGENT, "model.ckpt")
    assert "playing the agent shipped in models/airstriker" in notice
    with pytest.raises(NoCheckpointError, match="no trained agent for SonicTheHedgehog-Genesis-v0 .* "
                                                "--game Airstriker-Genesis-v0"):
        resolve_watched("latest", str(tmp_path / "models"), env.SONIC_GAME)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "latest").write_text(str(tmp_path / "runs" / "r" / "checkpoints" / "000001"))
    with pytest.raises(Exception, match="not found"):                # a trained agent's pointer is never bypassed
        resolve_watched("latest", str(tmp_path / "models"), env.DEFAULT_GAME)


@pytest.mark.slow
def test_play_py_on_a_fresh_clone_plays_the_shipped_agent_better_than_random(tmp_path):
    """python play.py with no models/latest: the shipped agent plays one episode of the default game (seed 0),
    and scores above twice random play's mean (~176)."""
    result = run_script("play.py", "--models-dir", str(tmp_path / "models"), "--no-window", "--seed", "0",
                        timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "playing the agent shipped in models/airstriker" in result.stdout
    score = float(result.stdout.split("mean score over 1 episode(s): ")[1].split()[0])
    assert score > 2 * 176, result.stdout
