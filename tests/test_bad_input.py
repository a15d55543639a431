"""Bad input: one clear line on stderr that says what to do (no traceback), a non-zero exit code, and nothing
on disk changed: every case runs against the folders of an existing run (its runs/ and models/), whose files
(content and mtime) are compared before and after.

Cases that fail before TensorFlow is needed run agent.py / play.py as subprocesses (under a second each);
the checkpoint cases run agent.main in this process (TensorFlow loaded once), one of them also as a
subprocess for the real exit path; a disk that fills during a save is simulated in-process.
"""
import errno
import glob
import os
import shutil

import numpy as np
import pytest

from robustness_helpers import (assert_one_error_line, call_bounded, fake_env_fns, read_pointer, run_script,
                                tree_snapshot)

TRIED = []   # the bad inputs tried, for the report


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


# name, script, arguments ({base}: the existing run's base folder), fragments of the one error line
CASES = [
    ("unknown game", "agent.py", ["--game", "NoSuchGame-Genesis"],
     ["unknown game 'NoSuchGame-Genesis'", "use 'auto', 'sonic' or a game id that stable-retro knows"]),
    ("unknown state", "agent.py", ["--levels", "NoSuchLevel"],
     ["unknown state 'NoSuchLevel' for Airstriker-Genesis-v0", "valid states are Level1"]),
    ("Sonic without its ROM", "agent.py", ["--game", "sonic"],
     ["the Sonic ROM is not imported", "import it with `python -m stable_retro.import DIR`"]),
    ("Sonic without its ROM (play)", "play.py", ["--game", "sonic"],
     ["the Sonic ROM is not imported", "python -m stable_retro.import"]),
    ("--resume of a path that does not exist", "agent.py", ["--resume", "{base}/no-such-run"],
     ["cannot resume from", "no such checkpoint folder", "Give 'latest', a run folder"]),
    ("--resume latest with no run saved", "agent.py", ["--resume", "latest", "--models-dir", "{base}/no-models"],
     ["nothing to resume", "no-models/latest does not exist"]),
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
]


@pytest.mark.parametrize("name, script, args, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_subprocess(existing, name, script, args, fragments):
    import env
    if "Sonic" in name and env.rom_imported(env.SONIC_GAME):
        pytest.skip("the Sonic ROM is imported on this machine")
    base = existing
    before = tree_snapshot(base)
    folders = where(base) if script == "agent.py" else ["--models-dir", str(base / "models"), "--no-window"]
    args = folders + [a.replace("{base}", str(base)) for a in args]   # a later option wins
    result = run_script(script, *args, timeout=120)
    TRIED.append(name)
    assert result.returncode == 2, (result.stdout[-1000:], result.stderr[-2000:])
    assert_one_error_line(result.stderr, *fragments)
    assert tree_snapshot(base) == before, "files changed"
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
    TRIED.append(f"checkpoint: {kind}")
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, *fragments)
    assert tree_snapshot(existing, tmp_path) == before, "files changed"


def test_truncated_checkpoint_subprocess(existing, tmp_path):
    """The same through a real agent.py process (emulator workers, TensorFlow start-up): exit code 2, one line."""
    args = make_bad_checkpoint("truncated weights", existing, tmp_path)
    before = tree_snapshot(existing, tmp_path)
    result = run_script("agent.py", *where(existing), *args, "--no-progress", "--tf-threads", "1", timeout=240)
    TRIED.append("checkpoint: truncated weights (agent.py process)")
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
    TRIED.append(f"disk full during a save ({where_it_fails})")
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, f"could not write checkpoint '{run}/checkpoints/000003'",
                          "No space left on device", "The previous checkpoint is intact", "free disk space")
    assert tree_snapshot(f"{run}/checkpoints", models) == before, "checkpoints or pointers changed"
    assert not glob.glob(f"{run}/checkpoints/*.tmp-*")
    assert read_pointer(f"{run}/checkpoints/latest") == "000002"


def test_report_bad_inputs_tried(capsys):
    with capsys.disabled():
        print(f"\nbad inputs tried: {len(TRIED)}: " + "; ".join(TRIED))
