"""Bad input: one clear line on stderr that says what to do (no traceback), a non-zero exit code, and nothing
on disk changed: every case runs against the folders of an existing run (its runs/ and models/), whose files
(content and mtime) are compared before and after.

CASES is the table of bad inputs given to the scripts (agent.py, play.py, evaluate.py, plot.py, export.py,
bench/throughput.py, bench/levels_demo.py), each run as a subprocess: numbers argparse accepts but the code cannot use, output paths
that cannot be written (refused before any work), files that are not what they claim. The checkpoint cases run
agent.main in this process (TensorFlow loaded once), one of them also as a subprocess for the real exit path;
a disk that fills while a checkpoint, a video, a table or a plot is written is simulated in-process.
"""
import errno
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from robustness_helpers import (assert_one_error_line, call_bounded, fake_env_fns, read_pointer, run_script,
                                tree_snapshot)

@pytest.fixture(scope="module")
def existing(tmp_path_factory):
    """An existing run made by agent.main (env workers on faulty_envs image envs): runs/r with checkpoints
    1 and 2, models/latest. Returns its base folder."""
    import agent
    import env
    base = tmp_path_factory.mktemp("existing")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
        code = call_bounded(lambda: agent.main([
            "--num-envs", "2", "--nsteps", "32", "--noptepochs", "1", "--nminibatches", "2", "--log-interval", "1",
            "--total-timesteps", "128", "--run-name", "r", "--runs-dir", str(base / "runs"),
            "--models-dir", str(base / "models"), "--no-progress", "--tf-threads", "1"]), 300)
    assert code == 0
    assert read_pointer(base / "runs" / "r" / "checkpoints" / "latest") == "000002"
    return base


def where(base) -> list:
    return ["--runs-dir", str(base / "runs"), "--models-dir", str(base / "models")]


# name, script, arguments ({base}: the existing run's base folder; {tmp}: a fresh folder of the case, which
# SETUPS may fill first), fragments of the one error line
RESUME_COPY = ["--resume", "{tmp}/runs/r", "--runs-dir", "{tmp}/runs", "--models-dir", "{tmp}/models"]
CASES = [
    ("unknown game", "agent.py", ["--game", "NoSuchGame-Genesis"],
     ["unknown game 'NoSuchGame-Genesis'", "use 'auto', 'sonic' or a game id that stable-retro knows"]),
    ("unknown Atari game", "agent.py", ["--game", "ALE/NoSuchGame-v5"],
     ["unknown Atari game 'ALE/NoSuchGame-v5'", "give ALE/<Name>-v5 with a game ale-py ships"]),
    ("unknown state", "agent.py", ["--levels", "NoSuchLevel"],
     ["unknown state 'NoSuchLevel' for Airstriker-Genesis-v0", "valid states are Level1"]),
    ("Sonic without its ROM", "agent.py", ["--game", "sonic"],
     ["the Sonic ROM is not imported", "import it with `python -m stable_retro.import DIR`"]),
    ("Sonic without its ROM (play)", "play.py", ["--game", "sonic"],
     ["the Sonic ROM is not imported", "python -m stable_retro.import"]),
    ("--resume of a path that does not exist", "agent.py", ["--resume", "{base}/no-such-run"],
     ["checkpoint '", "no-such-run' not found", "give a run folder, a checkpoint folder"]),
    ("--resume latest with no run saved", "agent.py", ["--resume", "latest", "--models-dir", "{base}/no-models"],
     ["no checkpoint found", "no-models/latest does not exist", "name a checkpoint with --resume PATH"]),
    ("--init-weights of a path that does not exist", "agent.py",
     ["--init-weights", "{base}/no-such/model.ckpt", "--num-envs", "2", "--nsteps", "32"],
     ["checkpoint '", "not found", "give a run folder, a checkpoint folder, a TF checkpoint prefix"]),
    ("play --checkpoint of a path that does not exist", "play.py", ["--checkpoint", "{base}/no-such-checkpoint"],
     ["not found", "give a run folder, a checkpoint folder"]),
    ("nenvs * nsteps not divisible by the minibatch count", "agent.py", ["--num-envs", "2", "--nsteps", "5"],
     ["num_envs * nsteps = 10 is not divisible by --nminibatches 8", "choose nsteps or nminibatches"]),
    ("zero timesteps", "agent.py", ["--num-envs", "2", "--total-timesteps", "0"],
     ["--total-timesteps must be positive, got 0"]),
    ("negative timesteps", "agent.py", ["--num-envs", "2", "--total-timesteps", "-64"],
     ["--total-timesteps must be positive, got -64"]),
    ("zero steps", "agent.py", ["--num-envs", "2", "--nsteps", "0"], ["--nsteps must be positive, got 0"]),
    ("negative steps", "agent.py", ["--num-envs", "2", "--nsteps", "-32"], ["--nsteps must be positive, got -32"]),
    ("zero learning rate", "agent.py", ["--num-envs", "2", "--lr", "0"], ["--lr must be positive, got 0.0"]),
    ("negative learning rate", "agent.py", ["--num-envs", "2", "--lr", "-0.001"],
     ["--lr must be positive, got -0.001"]),
    ("a models folder that cannot be written", "agent.py",
     ["--num-envs", "2", "--nsteps", "32", "--models-dir", "{base}/runs/r/config.json/models"],
     ["cannot write to the models folder", "Not a directory", "choose another with --models-dir"]),
    ("a runs folder that cannot be written", "agent.py",
     ["--num-envs", "2", "--nsteps", "32", "--runs-dir", "{base}/runs/r/config.json/runs"],
     ["cannot write to the runs folder", "Not a directory", "choose another with --runs-dir"]),
    ("a run name that already holds checkpoints", "agent.py", ["--num-envs", "2", "--nsteps", "32", "--run-name", "r"],
     ["already holds checkpoints", "choose another --run-name, or continue it with --resume"]),
    # numbers argparse accepts but the code cannot use (NaN passes `x <= 0`: validation asks `not x > 0`)
    ("negative seed", "agent.py", ["--num-envs", "2", "--seed", "-1"], ["--seed must be 0 or more, got -1"]),
    ("negative seed (play)", "play.py", ["--seed", "-1"], ["--seed must be 0 or more, got -1"]),
    ("negative seed (evaluate)", "evaluate.py", ["--seed", "-1"], ["--seed must be 0 or more, got -1"]),
    ("NaN worker timeout", "agent.py", ["--num-envs", "2", "--worker-timeout", "nan"],
     ["--worker-timeout must be a finite number, got nan"]),
    ("infinite worker timeout", "agent.py", ["--num-envs", "2", "--worker-timeout", "inf"],
     ["--worker-timeout must be a finite number, got inf"]),
    ("NaN learning rate", "agent.py", ["--num-envs", "2", "--lr", "nan"], ["--lr must be a finite number, got nan"]),
    ("infinite learning rate", "agent.py", ["--num-envs", "2", "--lr", "inf"],
     ["--lr must be a finite number, got inf"]),
    ("NaN gamma", "agent.py", ["--num-envs", "2", "--gamma", "nan"], ["--gamma and --lam must lie between 0 and 1"]),
    ("NaN lambda", "agent.py", ["--num-envs", "2", "--lam", "nan"], ["--gamma and --lam must lie between 0 and 1"]),
    ("negative value-loss weight", "agent.py", ["--num-envs", "2", "--vf-coef", "-1"],
     ["--vf-coef must be 0 or more, got -1.0"]),
    ("NaN entropy weight", "agent.py", ["--num-envs", "2", "--ent-coef", "nan"],
     ["--ent-coef must be a finite number, got nan"]),
    ("infinite gradient clip", "agent.py", ["--num-envs", "2", "--max-grad-norm", "inf"],
     ["--max-grad-norm must be a finite number, got inf"]),
    ("zero optimizer epsilon", "agent.py", ["--num-envs", "2", "--epsilon", "0"],
     ["--epsilon must be positive, got 0.0"]),
    ("NaN optimizer epsilon", "agent.py", ["--num-envs", "2", "--epsilon", "nan"],
     ["--epsilon must be a finite number, got nan"]),
    ("negative ratio cap", "agent.py", ["--num-envs", "2", "--ratio-cap", "-1"],
     ["--ratio-cap must be positive, got -1.0"]),
    ("unknown policy loss", "agent.py", ["--num-envs", "2", "--policy-loss", "ppo"],
     ["--policy-loss must be one of a2c, capped, clip, got 'ppo'"]),
    ("clip range without the clip", "agent.py", ["--num-envs", "2", "--clip-range", "0.1"],
     ["--clip-range is a setting of --policy-loss clip, but this run's loss is 'capped': add --policy-loss clip"]),
    ("ratio cap with the clip", "agent.py", ["--num-envs", "2", "--policy-loss", "clip", "--ratio-cap", "2"],
     ["--ratio-cap is a setting of --policy-loss capped, but this run's loss is 'clip'"]),
    ("clip range of 1", "agent.py", ["--num-envs", "2", "--policy-loss", "clip", "--clip-range", "1"],
     ["--clip-range must lie between 0 and 1 (exclusive), got 1.0"]),
    ("NaN ratio cap", "agent.py", ["--num-envs", "2", "--ratio-cap", "nan"],
     ["--ratio-cap must be a finite number, got nan"]),
    ("negative KL bound", "agent.py", ["--num-envs", "2", "--ratio-cap", "1", "--max-kl", "-0.1"],
     ["--max-kl must be 0 or more, got -0.1"]),
    ("negative life-loss penalty", "agent.py", ["--num-envs", "2", "--life-loss-penalty", "-0.25"],
     ["--life-loss-penalty must be 0 or more, got -0.25"]),
    ("value steps without a KL bound", "agent.py", ["--num-envs", "2", "--max-kl", "0", "--value-after-kl"],
     ["--value-after-kl trains the value after the KL bound", "give --max-kl above 0 as well"]),
    ("negative thread count", "agent.py", ["--num-envs", "2", "--tf-threads", "-2"],
     ["--tf-threads must be 0 or more, got -2"]),
    ("negative checkpoints to keep", "agent.py", ["--num-envs", "2", "--keep-checkpoints", "-1"],
     ["--keep-checkpoints must be positive, got -1"]),
    ("zero log interval", "agent.py", ["--num-envs", "2", "--log-interval", "0"],
     ["--log-interval must be positive, got 0"]),
    ("negative env count", "agent.py", ["--num-envs", "-1"], ["--num-envs must be positive, got -1"]),
    ("--levels that names no level", "agent.py", ["--levels", ","], ["--levels ',' names no level"]),
    ("a run name with a folder in it", "agent.py", ["--num-envs", "2", "--run-name", "../escape"],
     ["--run-name '../escape' must be a plain folder name", "choose the parent folder with --runs-dir"]),
    ("the run name '.'", "agent.py", ["--num-envs", "2", "--run-name", "."], ["--run-name '.' must be a plain folder"]),
    ("--resume with a NaN learning rate", "agent.py", ["--resume", "{base}/runs/r", "--lr", "nan",
                                                       "--allow-config-change"], ["--lr must be a finite number"]),
    ("--resume with a negative seed", "agent.py", ["--resume", "{base}/runs/r", "--seed", "-1",
                                                   "--allow-config-change"], ["--seed must be 0 or more, got -1"]),
    ("zero episodes (play)", "play.py", ["--episodes", "0"], ["--episodes must be positive, got 0"]),
    ("zero episodes (evaluate)", "evaluate.py", ["--episodes", "0"], ["--episodes must be positive, got 0"]),
    ("zero smoothing", "plot.py", ["{base}/runs/r", "--smooth", "0", "-o", "{tmp}/p.png"],
     ["--smooth must be 1 or more, got 0"]),
    ("zero repetitions (bench)", "bench/throughput.py", ["--configs", "tiny", "--reps", "0"],
     ["--reps must be 1 or more, got 0"]),
    ("negative TF threads (bench)", "bench/throughput.py",
     ["--configs", "tiny", "--double-buffer", "--tf-threads", "-1"],
     ["--tf-threads must be 0 or more, got -1"]),
    ("double buffer on Ray (bench)", "bench/throughput.py",
     ["--configs", "tiny", "--double-buffer", "--backend", "ray"],
     ["--double-buffer measures the local Runner: drop --backend ray"]),
    ("zero train steps (bench)", "bench/throughput.py", ["--configs", "tiny", "--train-steps", "0"],
     ["--train-steps must be 1 or more, got 0"]),
    # output paths: refused before any work (no episode played, nothing measured), no file left
    ("--record to an existing folder", "play.py", ["--record", "{tmp}/clip.mp4"],
     ["--record", "clip.mp4' is a folder: name a file inside it"]),
    ("--record into a missing folder", "play.py", ["--record", "{tmp}/missing/clip.gif"],
     ["--record", "missing does not exist"]),
    ("--record into a file", "play.py", ["--record", "{base}/runs/r/config.json/clip.gif"],
     ["config.json is a file, not a folder"]),
    ("--record into a folder that refuses files", "play.py", ["--record", "/sys/clip.gif"],
     ["cannot write to the folder /sys", "choose another folder or fix its permissions"]),
    ("--out to an existing folder", "evaluate.py", ["--out", "{tmp}/scores.csv"],
     ["--out", "scores.csv' is a folder: name a file inside it"]),
    ("--out into a missing folder", "evaluate.py", ["--out", "{tmp}/missing/scores.json"], ["missing does not exist"]),
    ("-o to an existing folder", "plot.py", ["{base}/runs/r", "-o", "{tmp}/p.png"], ["-o", "p.png' is a folder"]),
    ("-o into a missing folder", "plot.py", ["{base}/runs/r", "-o", "{tmp}/missing/p.png"],
     ["missing does not exist"]),
    ("-o that is not a PNG", "plot.py", ["{base}/runs/r", "-o", "{tmp}/p.jpg"], ["the file must end in .png"]),
    ("--json to an existing folder (bench)", "bench/throughput.py", ["--configs", "tiny", "--json", "{tmp}/b.json"],
     ["--json", "b.json' is a folder"]),
    # files that are not what they claim, found before a --resume rewrites config.json or starts env workers
    ("progress.csv with garbage, on --resume", "agent.py", RESUME_COPY,
     ["progress.csv is not a training table of this project", "total_timesteps 'abc' is not a number",
      "then --resume again"]),
    ("progress.csv of random bytes, on --resume", "agent.py", RESUME_COPY,
     ["progress.csv is not a training table of this project", "codec can't decode"]),
    ("progress.csv that is a folder, on --resume", "agent.py", RESUME_COPY, ["progress.csv is not a training table"]),
    ("config.json that is not JSON, on --resume", "agent.py", RESUME_COPY, ["has no readable config.json"]),
    ("config.json that is a JSON list, on --resume", "agent.py", RESUME_COPY,
     ["has no readable config.json (not a JSON object)"]),
    ("state.json that is a JSON list", "agent.py", RESUME_COPY, ["is corrupt (state.json: not a JSON object)"]),
    ("state.json with a foreign training state", "agent.py", RESUME_COPY,
     ["holds training state this version does not know (level)", "--init-weights"]),
    ("state.json of a later version (an extra field)", "agent.py", RESUME_COPY,
     ["holds training state this version does not know (adaptive_lr)", "written by another version"]),
    ("state.json with a training state of the wrong type", "agent.py", RESUME_COPY,
     ["is corrupt (state.json, training state:", "resume from an earlier one"]),
    ("state.json with a setting of the wrong type", "agent.py", RESUME_COPY,
     ["is corrupt (state.json: the setting nsteps 'x' (not int))"]),
    ("progress.csv with garbage (plot)", "plot.py", ["{tmp}/runs/r", "-o", "{tmp}/p.png"],
     ["no row has a number in total_timesteps"]),
    ("progress.csv of random bytes (plot)", "plot.py", ["{tmp}/runs/r", "-o", "{tmp}/p.png"],
     ["progress.csv: cannot be read as a table"]),
    ("negative --eval-every", "agent.py", ["--num-envs", "2", "--eval-every", "-1"],
     ["--eval-every must be 0 or more, got -1"]),
    ("zero --eval-episodes", "agent.py", ["--num-envs", "2", "--eval-every", "2", "--eval-episodes", "0"],
     ["--eval-episodes must be positive, got 0"]),
    ("negative --video-every", "agent.py", ["--num-envs", "2", "--video-every", "-3"],
     ["--video-every must be 0 or more, got -3"]),
    ("--collapse-warning of 1 or more", "agent.py", ["--num-envs", "2", "--collapse-warning", "1.5"],
     ["--collapse-warning must lie in [0, 1)", "got 1.5"]),
    ("--collapse-warning NaN", "agent.py", ["--num-envs", "2", "--collapse-warning", "nan"],
     ["--collapse-warning must lie in [0, 1)", "got nan"]),
    ("--eval-levels held-out without the Sonic ROM", "agent.py",
     ["--num-envs", "2", "--eval-every", "2", "--eval-levels", "held-out"],
     ["the Sonic ROM is not imported", "python -m stable_retro.import"]),
    ("--eval-levels naming no level", "agent.py", ["--num-envs", "2", "--eval-every", "2", "--eval-levels", ","],
     ["--eval-levels ','", "give 'auto', train, held-out, default or level names"]),
    ("--eval-levels of an unknown level", "agent.py", ["--num-envs", "2", "--eval-every", "2", "--eval-levels", "Nope"],
     ["unknown state 'Nope' for Airstriker-Genesis-v0", "valid states are Level1"]),
    ("--levels for a plot of several runs", "plot.py", ["{base}/runs/r", "{base}/runs/r", "--levels", "-o", "{tmp}/p.png"],
     ["--levels draws the levels of one run: give one run folder, not 2"]),
    ("--levels for a run over one level", "plot.py", ["{base}/runs/r", "--levels", "-o", "{tmp}/p.png"],
     ["no per-level columns (levels/<level>/return_mean)", "runs over several levels"]),
    ("export into a folder that is not empty", "export.py", ["{base}/runs/r", "{base}/runs/r"],
     ["exists and is not an empty folder", "nothing is overwritten"]),
    ("export of a path that does not exist", "export.py", ["{base}/no-such-run", "{tmp}/out"],
     ["checkpoint '", "no-such-run' not found"]),
    ("--resume of a run that has trained its whole budget", "agent.py", ["--resume", "{base}/runs/r"],
     ["has already trained 128 steps, its whole --total-timesteps 128: nothing to do",
      "--total-timesteps 256"]),
    ("levels demo with one group", "bench/levels_demo.py", ["--groups", "1", "--out", "{tmp}/demo"],
     ["--groups must lie between 2 and 26, got 1"]),
    ("levels demo into an existing folder", "bench/levels_demo.py", ["--out", "{base}/runs/r"],
     ["exists: give a new --out (nothing is overwritten)"]),
]


def copy_of_run(base, tmp) -> str:
    """runs/r of the existing run copied to tmp/runs/r, beside an empty tmp/models; returns the run folder."""
    (tmp / "models").mkdir()
    return copy_run(base, tmp)


def edit_state(run: str, change) -> None:
    """Apply change(state) to the state.json of the run's latest checkpoint (2)."""
    path = os.path.join(run, "checkpoints", "000002", "state.json")
    with open(path) as fh:
        state = json.load(fh)
    with open(path, "w") as fh:
        json.dump(change(state), fh)


def write_file(path, content) -> None:
    with open(path, "wb" if isinstance(content, bytes) else "w") as fh:
        fh.write(content)


def replace_with_folder(path) -> None:
    os.remove(path)
    os.mkdir(path)


GARBAGE_CSV = "total_timesteps,ep_return_mean\nabc,def\n1x,2\n"
RANDOM_BYTES = bytes(np.random.default_rng(0).integers(128, 256, size=300, dtype=np.uint8))   # not UTF-8
# name of a case -> set-up of its {tmp} folder (base, tmp) before it runs
SETUPS = {
    "--record to an existing folder": lambda base, tmp: (tmp / "clip.mp4").mkdir(),
    "--out to an existing folder": lambda base, tmp: (tmp / "scores.csv").mkdir(),
    "-o to an existing folder": lambda base, tmp: (tmp / "p.png").mkdir(),
    "--json to an existing folder (bench)": lambda base, tmp: (tmp / "b.json").mkdir(),
    "progress.csv with garbage, on --resume":
        lambda base, tmp: write_file(f"{copy_of_run(base, tmp)}/progress.csv", GARBAGE_CSV),
    "progress.csv of random bytes, on --resume":
        lambda base, tmp: write_file(f"{copy_of_run(base, tmp)}/progress.csv", RANDOM_BYTES),
    "progress.csv that is a folder, on --resume":
        lambda base, tmp: replace_with_folder(f"{copy_of_run(base, tmp)}/progress.csv"),
    "config.json that is not JSON, on --resume":
        lambda base, tmp: write_file(f"{copy_of_run(base, tmp)}/config.json", "{not json"),
    "config.json that is a JSON list, on --resume":
        lambda base, tmp: write_file(f"{copy_of_run(base, tmp)}/config.json", "[1, 2]"),
    "state.json that is a JSON list": lambda base, tmp: edit_state(copy_of_run(base, tmp), lambda state: [1, 2]),
    "state.json with a foreign training state":
        lambda base, tmp: edit_state(copy_of_run(base, tmp), lambda state: dict(state, training={"level": 3})),
    "state.json of a later version (an extra field)":
        lambda base, tmp: edit_state(copy_of_run(base, tmp),
                                     lambda state: dict(state, training=dict(state["training"], adaptive_lr=None))),
    "state.json with a training state of the wrong type":
        lambda base, tmp: edit_state(copy_of_run(base, tmp),
                                     lambda state: dict(state, training=dict(state["training"], rng_state="x"))),
    "state.json with a setting of the wrong type":
        lambda base, tmp: edit_state(copy_of_run(base, tmp),
                                     lambda state: dict(state, config=dict(state["config"], nsteps="x"))),
    "progress.csv with garbage (plot)":
        lambda base, tmp: write_file(f"{copy_of_run(base, tmp)}/progress.csv", GARBAGE_CSV),
    "progress.csv of random bytes (plot)":
        lambda base, tmp: write_file(f"{copy_of_run(base, tmp)}/progress.csv", RANDOM_BYTES),
}


def default_options(script: str, base) -> list:
    """The options every case of `script` starts with (its own come after them: a later option wins)."""
    if script == "agent.py":
        return where(base)
    if script == "play.py":
        return ["--models-dir", str(base / "models"), "--no-window"]
    if script == "evaluate.py":
        return ["--models-dir", str(base / "models"), "--episodes", "1"]
    return []


def refuses_new_files(folder: str) -> bool:
    try:
        with open(os.path.join(folder, ".probe"), "w"):
            pass
    except OSError:
        return True
    os.remove(os.path.join(folder, ".probe"))
    return False


@pytest.mark.parametrize("name, script, args, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_subprocess(existing, tmp_path, name, script, args, fragments):
    import env
    if "Sonic" in name and env.rom_imported(env.SONIC_GAME):
        pytest.skip("the Sonic ROM is imported on this machine")
    if "/sys/" in " ".join(args) and not (os.path.isdir("/sys") and refuses_new_files("/sys")):
        pytest.skip("no folder here refuses new files (/sys is missing or writable)")
    base = existing
    SETUPS.get(name, lambda base, tmp: None)(base, tmp_path)
    before = tree_snapshot(base, tmp_path)
    args = default_options(script, base) + [a.replace("{base}", str(base)).replace("{tmp}", str(tmp_path))
                                            for a in args]
    result = run_script(script, *args, timeout=120)
    assert result.returncode == 2, (result.stdout[-1000:], result.stderr[-2000:])
    assert_one_error_line(result.stderr, *fragments)
    assert tree_snapshot(base, tmp_path) == before, "files changed"
    assert not os.path.exists(base / "no-models")


# ----------------------------------------------------------------------------- checkpoints

def write_checkpoint(prefix: str, variables: dict) -> None:
    """A TF checkpoint at `prefix` holding `variables` (name -> array)."""
    import tensorflow.compat.v1 as tf

    import model  # noqa: F401  (disables TF2 behaviour)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as sess:
        tf_vars = {name: tf.Variable(value, name=name.replace("/", "_")) for name, value in variables.items()}
        sess.run(tf.global_variables_initializer())
        tf.train.Saver(tf_vars).save(sess, prefix, write_meta_graph=False, write_state=False)


def policy_shapes(nactions: int = 7) -> dict:
    return {"model/conv2d/kernel": [8, 8, 4, 32], "model/conv2d/bias": [32],
            "model/conv2d_1/kernel": [4, 4, 32, 64], "model/conv2d_1/bias": [64],
            "model/conv2d_2/kernel": [3, 3, 64, 64], "model/conv2d_2/bias": [64],
            "model/dense/kernel": [4096, 512], "model/dense/bias": [512],
            "model/pi/w": [512, nactions], "model/pi/b": [nactions],
            "model/dense_1/kernel": [512, 1], "model/dense_1/bias": [1]}


def copy_run(base, extra) -> str:
    shutil.copytree(base / "runs" / "r", extra / "runs" / "r")
    return str(extra / "runs" / "r")


def truncate(path: str, keep: float = 0.5) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))


def make_bad_checkpoint(kind: str, base, extra) -> list:
    """Set up one bad checkpoint under `extra`; returns the arguments that use it."""
    if kind == "truncated weights":
        run = copy_run(base, extra)
        truncate(glob.glob(f"{run}/checkpoints/000002/model.ckpt.data-*")[0])
        return ["--resume", run]
    if kind == "truncated index":
        run = copy_run(base, extra)
        truncate(f"{run}/checkpoints/000002/model.ckpt.index", 0.3)
        return ["--resume", run]
    if kind == "corrupt state.json":
        run = copy_run(base, extra)
        truncate(f"{run}/checkpoints/000002/state.json", 0.5)
        return ["--resume", f"{run}/checkpoints/000002"]
    if kind == "weights-only folder given to --resume":
        run = copy_run(base, extra)
        os.remove(f"{run}/checkpoints/000002/state.json")
        return ["--resume", f"{run}/checkpoints/000002"]
    if kind == "another action count":
        shapes = policy_shapes(nactions=5)
    elif kind == "another architecture":
        shapes = {"net/fc1/w": [4096, 256], "net/fc1/b": [256], "net/out/w": [256, 7]}
    elif kind == "another observation size":
        shapes = dict(policy_shapes(), **{"model/dense/kernel": [3136, 512]})   # 84x84 inputs
    rng = np.random.default_rng(0)
    write_checkpoint(str(extra / "other" / "model.ckpt"),
                     {n: rng.normal(0, 0.01, s).astype(np.float32) for n, s in shapes.items()})
    return ["--init-weights", str(extra / "other" / "model.ckpt"), "--num-envs", "2", "--nsteps", "32",
            "--run-name", "new"]


CHECKPOINT_CASES = [
    ("truncated weights", ["is corrupt or truncated", "use an earlier checkpoint"]),
    ("truncated index", ["cannot read checkpoint"]),
    ("corrupt state.json", ["is corrupt (state.json", "resume from an earlier one in the same folder"]),
    ("weights-only folder given to --resume", ["not a checkpoint folder written by agent.py (no state.json)",
                                               "with --init-weights"]),
    ("another action count", ["holds model/pi/w of shape [512, 5], this model needs [512, 7]",
                              "(another number of actions)"]),
    ("another architecture", ["has no variable model/conv2d/kernel", "not saved by this architecture"]),
    ("another observation size", ["holds model/dense/kernel of shape [3136, 512], this model needs [4096, 512]",
                                  "(another observation size or network)"]),
]


@pytest.mark.parametrize("kind, fragments", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_bad_checkpoint(existing, tmp_path, monkeypatch, capsys, kind, fragments):
    import agent
    import env
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
    args = make_bad_checkpoint(kind, existing, tmp_path)
    before = tree_snapshot(existing, tmp_path)
    capsys.readouterr()
    code = call_bounded(lambda: agent.main(where(existing) + args + ["--no-progress", "--tf-threads", "1"]), 300)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, *fragments)
    assert tree_snapshot(existing, tmp_path) == before, "files changed"


def test_truncated_checkpoint_subprocess(existing, tmp_path):
    """The same through a real agent.py process (emulator workers, TensorFlow start-up): exit code 2, one line."""
    args = make_bad_checkpoint("truncated weights", existing, tmp_path)
    before = tree_snapshot(existing, tmp_path)
    result = run_script("agent.py", *where(existing), *args, "--no-progress", "--tf-threads", "1", timeout=240)
    assert result.returncode == 2, result.stderr[-3000:]
    assert_one_error_line(result.stderr, "is corrupt or truncated", "use an earlier checkpoint")
    assert tree_snapshot(existing, tmp_path) == before, "files changed"


# ----------------------------------------------------------------------------- a disk that fills during a save

@pytest.mark.parametrize("where_it_fails", ["weights", "latest pointer"])
def test_disk_full_during_a_save(existing, tmp_path, monkeypatch, capsys, where_it_fails):
    """--resume of a copy of the run; the first save raises ENOSPC (after writing part of its files, or when
    moving the latest pointer): exit code 2 and one line; checkpoints 1 and 2, the pointers and models/latest
    as they were, no temporary folder or file left."""
    import agent
    import checkpoint
    import env
    import model
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
    run = copy_run(existing, tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    (models / "latest").write_text(f"{run}/checkpoints/000002")
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if where_it_fails == "weights":
        real_save = model.Model.save

        def save(self, path):
            real_save(self, path)           # part of the files written, then the disk is full
            truncate(path + ".index", 0.5)
            raise full
        monkeypatch.setattr(model.Model, "save", save)
    else:
        # the checkpoint folder is complete and renamed into place; writing the new latest pointer fails
        # after part of its temporary file is written
        def open_(path, mode="r", *args, **kwargs):
            if str(path).startswith(os.path.join(run, "checkpoints", "latest" + checkpoint.TMP_MARK)):
                with open(path, mode, *args, **kwargs) as fh:
                    fh.write("00")
                raise full
            return open(path, mode, *args, **kwargs)
        monkeypatch.setattr(checkpoint, "open", open_, raising=False)
    before = tree_snapshot(f"{run}/checkpoints", models)
    capsys.readouterr()
    code = call_bounded(lambda: agent.main(["--resume", run, "--total-timesteps", "256", "--runs-dir",
                                            str(tmp_path / "runs"), "--models-dir", str(models), "--no-progress",
                                            "--tf-threads", "1"]), 300)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, f"could not write checkpoint '{run}/checkpoints/000003'",
                          "No space left on device", "The previous checkpoint is intact", "free disk space")
    assert tree_snapshot(f"{run}/checkpoints", models) == before, "checkpoints or pointers changed"
    assert not glob.glob(f"{run}/checkpoints/*.tmp-*")
    assert read_pointer(f"{run}/checkpoints/latest") == "000002"


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def open_that_fills_the_disk(real_open=open):
    """A stand-in for open(): reading works; a file opened for writing gets a few bytes, then ENOSPC."""
    def open_(path, mode="r", *args, **kwargs):
        if "w" not in mode and "a" not in mode:
            return real_open(path, mode, *args, **kwargs)
        with real_open(path, mode, *args, **kwargs) as fh:
            fh.write(b"part" if "b" in mode else "part")
        raise ENOSPC
    return open_


def test_a_full_disk_at_the_first_checkpoint_says_there_is_none(existing, tmp_path, monkeypatch, capsys):
    """A new run whose first save fails with TensorFlow's many-line error: one line, the OS's reason, and no
    claim of a previous checkpoint (there is none); models/latest is not created."""
    import tensorflow.compat.v1 as tf

    import agent
    import env
    import model
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))

    def save(self, path):
        raise tf.errors.ResourceExhaustedError(None, None, "Graph execution error:\n\nDetected at node 'save/SaveV2'"
                                               f"\n{path}.data-00000-of-00001.tempstate1; No space left on device\n"
                                               "\t [[{{node save/SaveV2}}]]\nHint: If you want to see ...")
    monkeypatch.setattr(model.Model, "save", save)
    capsys.readouterr()
    code = call_bounded(lambda: agent.main(["--num-envs", "2", "--nsteps", "32", "--noptepochs", "1",
                                            "--nminibatches", "2", "--total-timesteps", "64", "--run-name", "new",
                                            "--runs-dir", str(tmp_path / "runs"), "--models-dir",
                                            str(tmp_path / "models"), "--no-progress", "--tf-threads", "1"]), 300)
    assert code == 2
    line = assert_one_error_line(capsys.readouterr().err, "could not write checkpoint",
                                 "No space left on device. No checkpoint of this run was written before",
                                 "then start the run again")
    assert "previous checkpoint is intact" not in line and "Detected at node" not in line
    assert not os.path.exists(tmp_path / "models" / "latest")
    assert not os.path.exists(tmp_path / "runs" / "new")     # nothing of it could be resumed: no folder is left


def test_a_full_disk_while_writing_a_plot_keeps_the_earlier_png(existing, tmp_path, monkeypatch, capsys):
    import matplotlib.figure

    import plot
    png = tmp_path / "progress.png"
    png.write_bytes(b"an earlier plot")

    def savefig(self, path, **kwargs):
        open_that_fills_the_disk()(path, "wb")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    before = tree_snapshot(existing, tmp_path)
    capsys.readouterr()
    assert plot.main([str(existing / "runs" / "r"), "-o", str(png)]) == 2
    assert_one_error_line(capsys.readouterr().err, f"could not write -o '{png}' (No space left on device)",
                          "it was left as it was")
    assert tree_snapshot(existing, tmp_path) == before, "files changed"


@pytest.mark.parametrize("name", ["clip.gif", "clip.mp4"])
def test_a_full_disk_while_writing_a_video_leaves_no_part(tmp_path, monkeypatch, capfd, name):
    """GIF: the file write fails. MP4: ffmpeg (a separate process) fails and says why on file descriptor 2,
    imageio reports a broken pipe: ffmpeg's own words become the reason, and its lines are not shown."""
    import imageio.v2

    import recording
    video = tmp_path / name
    video.write_bytes(b"an earlier video")
    if name.endswith(".gif"):
        monkeypatch.setattr(recording, "open", open_that_fills_the_disk(), raising=False)
        reason = "No space left on device"
    else:
        def get_writer(path, **kwargs):
            with open(path, "wb") as fh:                           # part of the video, then ffmpeg fails
                fh.write(b"part")
            os.write(2, b"[out#0/mp4 @ 0x5555] Error closing file: No space left on device\n")
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        monkeypatch.setattr(imageio.v2, "get_writer", get_writer)
        reason = "Error closing file: No space left on device"
    frames = [np.full((16, 16, 3), value, np.uint8) for value in range(0, 240, 40)]
    with pytest.raises(recording.VideoError) as error:
        recording.write_video(str(video), frames)
    assert str(error.value).startswith(f"could not write --record '{video}' ({reason})")
    assert video.read_bytes() == b"an earlier video"
    assert os.listdir(tmp_path) == [name]                     # no temporary file left
    assert "out#0" not in capfd.readouterr().err              # ffmpeg's line went into the message only


def test_a_full_disk_while_writing_the_score_table_keeps_the_earlier_one(tmp_path, monkeypatch):
    import evaluate
    table = tmp_path / "scores.csv"
    table.write_text("an earlier table")
    monkeypatch.setattr(evaluate, "open", open_that_fills_the_disk(), raising=False)
    rows = [evaluate.summarise("Level1", [{"r": 1.0, "l": 3}]), evaluate.summarise("overall", [{"r": 1.0, "l": 3}])]
    with pytest.raises(evaluate.EvaluateError, match=r"could not write --out .*\(No space left on device\)"):
        evaluate.write_results(str(table), rows, {"Level1": [{"r": 1.0, "l": 3}]}, {})
    assert table.read_text() == "an earlier table"
    assert os.listdir(tmp_path) == ["scores.csv"]


def test_a_full_disk_while_logging_keeps_the_table_whole(tmp_path, monkeypatch):
    """A row that cannot be written leaves progress.csv as it was (no half row a --resume could not read)."""
    import io

    import logger
    run_logger = logger.RunLogger(str(tmp_path), 1000, progress=False, stream=io.StringIO())
    row = {"nupdates": 1, "total_timesteps": 64, "ep_return_mean": float("nan")}
    run_logger.log_row(row)
    before = (tmp_path / "progress.csv").read_bytes()
    monkeypatch.setattr(logger, "open", open_that_fills_the_disk(), raising=False)
    with pytest.raises(logger.CheckpointError, match=r"could not write the training table .*No space left on "
                                                     r"device.*the run stopped; its last checkpoint is intact"):
        run_logger.log_row(dict(row, nupdates=2, total_timesteps=128))
    run_logger.close()
    assert (tmp_path / "progress.csv").read_bytes() == before
    assert not glob.glob(str(tmp_path / ".progress.tmp-*"))


def test_errors_imports_nothing_heavy():
    """Naming an error loads no emulator, OpenCV or TensorFlow, and no module of the project."""
    code = ("import sys; import errors, outputs; "
            "print(sorted(m for m in ('cv2', 'stable_retro', 'tensorflow', 'numpy', 'env', 'config', 'checkpoint', "
            "'recording', 'vec_env', 'model') if m in sys.modules))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_old_names_of_the_errors_still_work():
    import checkpoint
    import config
    import env
    import errors
    import recording
    import vec_env
    assert env.GameError is errors.GameError and config.ConfigError is errors.ConfigError
    assert checkpoint.CheckpointError is errors.CheckpointError and recording.VideoError is errors.VideoError
    assert vec_env.WorkerError is errors.WorkerError


def test_the_table_covers_every_script_and_each_setup_names_a_case():
    """Every entry script has rows in the table; names are unique (they are the test ids and SETUPS' keys)."""
    names = [case[0] for case in CASES]
    assert len(set(names)) == len(names)
    assert set(SETUPS) <= set(names)
    scripts = {case[1] for case in CASES}
    assert scripts == {"agent.py", "play.py", "evaluate.py", "plot.py", "bench/throughput.py", "export.py",
                       "bench/levels_demo.py"}
    for script in scripts:
        assert os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), script))


def test_a_full_disk_while_writing_tensorboard_events_is_one_line(tmp_path):
    """The events are written in the learner's thread: a full disk is one CheckpointError that says the last
    checkpoint is intact, not a traceback of a writer thread."""
    import io

    import logger
    run_logger = logger.RunLogger(str(tmp_path), 1000, progress=False, stream=io.StringIO())

    def full(data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    run_logger.writer.records._writer.write = full
    with pytest.raises(logger.CheckpointError, match=r"could not write the TensorBoard events in .*\(No space left "
                                                     r"on device\): the run stopped; its last checkpoint is intact"):
        run_logger.log_row({"nupdates": 1, "total_timesteps": 64, "ep_return_mean": float("nan")})
    run_logger.close()
