"""End to end: a small training run of agent.py on the default game, then play.py on its checkpoint, each as its
own process, exactly as a user types them."""
import csv
import os
import re
import subprocess
import sys

import pytest

import env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ["nupdates", "total_timesteps", "fps", "policy_loss", "policy_entropy", "value_loss",
           "explained_variance", "time_elapsed"]


def run_script(args, cwd):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    environment.pop("DISPLAY", None)
    environment.pop("WAYLAND_DISPLAY", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=400)


@pytest.mark.slow
def test_train_then_play_on_the_default_game(tmp_path):
    # without the Sonic ROM, 'auto' is the default game; with it, name the default game explicitly
    sonic = env.rom_imported(env.SONIC_GAME)
    game_args = ["--game", env.DEFAULT_GAME] if sonic else []
    runs, models = tmp_path / "R", tmp_path / "M"
    train = run_script([os.path.join(REPO, "agent.py"), "--num-envs", "2", "--nsteps", "32",
                        "--total-timesteps", "256", "--log-interval", "2", "--runs-dir", str(runs),
                        "--models-dir", str(models), "--run-name", "t", "--no-progress", *game_args], cwd=tmp_path)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    out = train.stdout
    if not sonic:                                 # one short line; how to import the ROM is in --help
        notice = [line for line in out.splitlines() if line.startswith("Sonic ROM not imported")]
        assert len(notice) == 1 and len(notice[0]) <= 120 and "--help" in notice[0], notice
    assert "estimate from the first" in out and "per update" in out   # the run says early how long it takes
    for column in COLUMNS:
        assert re.search(rf"^\| {column}\s+\| ", out, re.M), column
    # 256 steps / (2 envs x 32 steps) = 4 updates; rows at the first, every 2nd and the last
    assert [int(n) for n in re.findall(r"^\| nupdates\s+\| (\d+)", out, re.M)] == [1, 2, 4]
    assert [int(n) for n in re.findall(r"^\| total_timesteps\s+\| (\d+)", out, re.M)] == [64, 128, 256]
    for row_values in re.findall(r"^\| (?:policy_loss|value_loss|policy_entropy)\s+\| (\S+)", out, re.M):
        float(row_values)                                     # printed as numbers
    checkpoint = runs / "t" / "checkpoints" / "000004"
    assert (checkpoint / "model.ckpt.index").is_file() and (checkpoint / "state.json").is_file()
    assert re.search(r"^checkpoint: .*000004\s*$", out, re.M), out[-2000:]
    latest = (models / "latest").read_text().strip()
    assert os.path.realpath(latest) == os.path.realpath(checkpoint)
    with open(runs / "t" / "progress.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["nupdates"]) for r in rows] == [1, 2, 4]
    assert set(COLUMNS) <= set(rows[0])

    play = run_script([os.path.join(REPO, "play.py"), "--checkpoint", "latest", "--models-dir", str(models),
                       "--no-window", *game_args], cwd=tmp_path)
    assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
    assert f"with {os.path.join(latest, 'model.ckpt')}" in play.stdout
    match = re.search(r"^episode 1: score (-?\d+), (\d+) steps", play.stdout, re.M)
    assert match, play.stdout
    assert 0 < int(match.group(2)) <= env.MAX_EPISODE_STEPS
    mean = re.search(r"mean score over 1 episode\(s\): (-?[\d.]+)", play.stdout)
    assert mean and float(mean.group(1)) == pytest.approx(float(match.group(1)), abs=0.5)
