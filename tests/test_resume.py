"""--resume continues a run exactly; config changes need --allow-config-change; logs are appended; keep-K and
best pruning; checkpoints of the 2018 scripts (weights only) load in play and as --init-weights.

Exactness is checked on faulty_envs.ImageEnv, deterministic, with episodes as long as nsteps: every env starts
a fresh episode at each update boundary, so the documented limitation (episodes in progress at a checkpoint
restart on resume) does not apply, and N updates in one go must equal N/2 + resume + N/2 bit for bit.
"""
import csv
import glob
import json
import os

import numpy as np
import pytest

import faulty_envs
from robustness_helpers import (assert_one_error_line, call_bounded, check_checkpoint, fake_env_fns, learn_fake,
                                read_pointer, read_variables, tree_snapshot)

UPDATES = 4
LOSS_COLUMNS = ("policy_loss", "policy_entropy", "value_loss", "explained_variance", "ep_return_mean",
                "ep_length_mean", "learning_rate")


def rows(run_dir) -> list:
    with open(os.path.join(run_dir, "progress.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def state(folder) -> dict:
    with open(os.path.join(folder, "state.json")) as fh:
        return json.load(fh)


SLOTS = {"rmsprop": ("/RMSPropZero", "RMSPropZero/step"), "rmsprop-2018": ("/RMSProp", "/RMSProp_1"),
         "adam": ("/Adam", "/Adam_1")}


NO_BOUND = dict(policy_loss="a2c", max_kl=0.0)


@pytest.mark.parametrize("optimizer, options", [("rmsprop", NO_BOUND), ("rmsprop-2018", NO_BOUND),
                                                ("adam", dict(policy_loss="capped", ratio_cap=1.0, max_kl=1e-4)),
                                                ("adam", dict(policy_loss="capped", ratio_cap=1.0, max_kl=1e-4,
                                                                     value_after_kl=True))])
def test_resume_continues_exactly(tmp_path, optimizer, options):
    """Two epochs of shuffled minibatches per update: the minibatches drawn after a resume must be the ones
    an uninterrupted run draws. The zero-start RMSProp, the 2018 one and Adam keep their slots across a resume;
    with a KL bound the updates end early at the same minibatch in both runs (or go on with steps of the value
    alone, whose Adam keeps its own slots)."""
    whole = tmp_path / "runs" / "whole"
    split = tmp_path / "runs" / "split"
    exact = dict(noptepochs=2, nminibatches=4, optimizer=optimizer, **options)
    call_bounded(lambda: learn_fake(whole, updates=UPDATES, **exact), 300)
    call_bounded(lambda: learn_fake(split, updates=UPDATES // 2, **exact), 300)
    first_half = rows(split)
    with open(split / "progress.csv", "rb") as fh:
        first_half_bytes = fh.read()
    events_before = glob.glob(str(split / "events.*"))
    out = call_bounded(lambda: learn_fake(split, updates=UPDATES, resume_from=split / "checkpoints" / "000002",
                                          **exact), 300)
    assert "checkpoint:" in out
    # one line says what is resumed: the checkpoint, its update and step count (2 updates of 2 envs x 16 steps)
    assert [line for line in out.splitlines() if line.startswith("resuming")] == [
        f"resuming {split / 'checkpoints' / '000002'}: update 2, 64 steps"]

    final = f"{UPDATES:06d}"
    a = read_variables(str(whole / "checkpoints" / final / "model.ckpt"))
    b = read_variables(str(split / "checkpoints" / final / "model.ckpt"))
    assert sorted(a) == sorted(b)
    assert all(any(name.endswith(slot) for name in a) for slot in SLOTS[optimizer])
    assert any(name.endswith("/ValueAdam") for name in a) == options.get("value_after_kl", False)
    different = [name for name in a if not np.array_equal(a[name], b[name])]
    assert not different, f"variables differ after resume: {different}"

    # counters, random state, episode window, worker restarts: the same
    sa, sb = state(whole / "checkpoints" / final), state(split / "checkpoints" / final)
    for key in ("update", "timesteps", "episodes", "rng_state", "worker_restarts", "action_rng_states"):
        assert sa["training"][key] == sb["training"][key], key
    assert sb["training"]["update"] == UPDATES and sb["training"]["timesteps"] == UPDATES * 2 * 16
    assert sa["score"] == sb["score"]

    # logs appended: the first process's rows kept byte for byte, the rows go on 1..N without duplicates,
    # the losses equal the uninterrupted run's; a second TensorBoard file beside the first
    with open(split / "progress.csv", "rb") as fh:
        assert fh.read().startswith(first_half_bytes)
    split_rows, whole_rows = rows(split), rows(whole)
    assert [int(r["nupdates"]) for r in split_rows] == list(range(1, UPDATES + 1))
    steps = [int(r["minibatch_steps"]) for r in whole_rows]
    assert [int(r["minibatch_steps"]) for r in split_rows] == steps
    assert (min(steps) < 8) == (options["max_kl"] > 0), steps   # the bound of 1e-4 ends updates early; else all 8
    assert split_rows[:len(first_half)] == first_half
    for ra, rb in zip(whole_rows, split_rows):
        assert {c: ra[c] for c in LOSS_COLUMNS} == {c: rb[c] for c in LOSS_COLUMNS}
    events_after = glob.glob(str(split / "events.*"))
    assert set(events_before) < set(events_after)

    # resuming from an older checkpoint (2, while 3 and 4 exist): the pointers move first, 3 is replayed and
    # rewritten, 4 is dropped, the log drops the rows after update 2 instead of duplicating them
    run = split
    call_bounded(lambda: learn_fake(run, updates=3, resume_from=run / "checkpoints" / "000002", **exact), 300)
    assert read_pointer(run / "checkpoints" / "latest") == "000003"
    assert not (run / "checkpoints" / "000004").exists()
    assert read_pointer(tmp_path / "models" / "latest") == str(run / "checkpoints" / "000003")
    best = read_pointer(run / "checkpoints" / "best")
    assert best is not None and int(best) <= 3
    check_checkpoint(str(run / "checkpoints" / best))
    assert [int(r["nupdates"]) for r in rows(run)] == [1, 2, 3]
    assert not glob.glob(str(run / "checkpoints" / "*.tmp-*"))


def test_keep_last_k_and_the_best(tmp_path):
    """4 updates, --keep-checkpoints 2, a mean return that falls every update: 3 and 4 are kept (the last 2)
    and 1 (the best by mean episode return); latest and models/latest name 4."""
    run = tmp_path / "runs" / "r"
    call_bounded(lambda: learn_fake(run, updates=4, keep_checkpoints=2,
                                    fns=faulty_envs.env_fns(2, 16, decay=True)), 300)
    returns = [float(r["ep_return_mean"]) for r in rows(run)]
    assert returns == sorted(returns, reverse=True) and returns[0] > returns[-1]
    folders = sorted(n for n in os.listdir(run / "checkpoints") if n.isdigit())
    assert folders == ["000001", "000003", "000004"]
    assert read_pointer(run / "checkpoints" / "best") == "000001"
    assert read_pointer(run / "checkpoints" / "latest") == "000004"
    assert read_pointer(tmp_path / "models" / "latest") == str(run / "checkpoints" / "000004")
    assert state(run / "checkpoints" / "000001")["score"] == pytest.approx(returns[0])
    for name in folders:
        check_checkpoint(str(run / "checkpoints" / name))


@pytest.fixture
def agent_run(tmp_path, monkeypatch):
    """A run made by agent.main (in this process, on faulty_envs image envs instead of the emulator): one
    update, then its folders. Returns (run folder, base argv)."""
    import agent
    import env
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
    base = ["--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "models"), "--no-progress",
            "--tf-threads", "1"]
    code = call_bounded(lambda: agent.main(["--num-envs", "2", "--nsteps", "32", "--log-interval", "1",
                                            "--noptepochs", "1", "--nminibatches", "2",
                                            "--total-timesteps", "64", "--run-name", "r", *base]), 300)
    assert code == 0
    return tmp_path / "runs" / "r", base


def test_config_change_is_refused_without_allow_config_change(agent_run, tmp_path, capsys):
    import agent
    run, base = agent_run
    capsys.readouterr()
    before = tree_snapshot(tmp_path)
    code = call_bounded(lambda: agent.main(["--resume", str(run), "--lr", "0.001", "--total-timesteps", "128",
                                            *base]), 120)
    err = capsys.readouterr().err
    assert code == 2
    assert_one_error_line(err, "lr 0.0002 -> 0.001", "--allow-config-change")
    assert tree_snapshot(tmp_path) == before, "a refused resume changed files"

    code = call_bounded(lambda: agent.main(["--resume", str(run), "--lr", "0.001", "--total-timesteps", "128",
                                            "--allow-config-change", *base]), 300)
    assert code == 0, capsys.readouterr().err
    latest = run / "checkpoints" / read_pointer(run / "checkpoints" / "latest")
    saved = state(latest)
    assert saved["training"]["update"] == 2 and saved["training"]["timesteps"] == 128
    assert saved["config"]["lr"] == 0.001
    with open(run / "config.json") as fh:
        assert json.load(fh)["lr"] == 0.001
    assert [int(r["nupdates"]) for r in rows(run)] == [1, 2]
    assert float(rows(run)[-1]["learning_rate"]) == 0.001
    # settings that do not change what is learned need no permission
    code = call_bounded(lambda: agent.main(["--resume", "latest", "--total-timesteps", "192", "--keep-checkpoints",
                                            "3", *base]), 300)
    assert code == 0
    assert [int(r["nupdates"]) for r in rows(run)] == [1, 2, 3]


def test_a_run_that_another_process_trains_is_refused_and_left_as_it_was(agent_run, tmp_path, capsys):
    """Two processes on one run folder would trim each other's table and prune or overwrite each other's
    checkpoints (seen: a benchmark resumed a run that was still finishing). The trainer holds the folder's lock;
    a second --resume gets one error line naming the holder, exit 2, and changes no file; once the lock is
    released, the same command resumes."""
    import agent
    from checkpoint import RunFolder
    run, base = agent_run
    holder = RunFolder(str(run))
    holder.lock()   # as a process still training the run holds it (flock: another descriptor is refused)
    try:
        capsys.readouterr()
        before = tree_snapshot(tmp_path)
        command = ["--resume", str(run), "--total-timesteps", "128", *base]
        code = call_bounded(lambda: agent.main(command), 120)
        assert code == 2
        assert_one_error_line(capsys.readouterr().err, "is being trained by another process",
                              f"(pid {os.getpid()})", f"kill -INT {os.getpid()}")
        assert tree_snapshot(tmp_path) == before, "a refused resume changed files"
    finally:
        holder.unlock()
    assert call_bounded(lambda: agent.main(command), 300) == 0
    assert [int(r["nupdates"]) for r in rows(run)] == [1, 2]


# ----------------------------------------------------------------------------- the 2018 scripts' checkpoints

@pytest.fixture
def legacy_checkpoint(tmp_path):
    """models/260/model.ckpt as the 2018 scripts saved it: the policy's weights only (no RMSProp slots, no
    state.json), named model/conv2d/kernel etc., with a meta graph and a 'checkpoint' file beside it.
    Returns (TF prefix, {name: value})."""
    import gymnasium as gym
    import tensorflow.compat.v1 as tf

    import model  # noqa: F401  (disables TF2 behaviour)
    from architecture import A2CPolicy
    prefix = str(tmp_path / "models" / "260" / "model.ckpt")
    os.makedirs(os.path.dirname(prefix))
    rng = np.random.default_rng(2018)
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as sess:
        A2CPolicy(sess, gym.spaces.Box(0, 255, (96, 96, 4), np.uint8), gym.spaces.Discrete(7), 1, 1)
        params = tf.trainable_variables("model")
        sess.run(tf.global_variables_initializer())
        values = {p.op.name: rng.normal(0, 0.05, p.shape.as_list()).astype(np.float32) for p in params}
        sess.run([p.assign(values[p.op.name]) for p in params])
        tf.train.Saver(params).save(sess, prefix)
    saved = read_variables(prefix)
    assert "model/conv2d/kernel" in saved and "model/pi/w" in saved
    assert not any("RMSProp" in name for name in saved)
    return prefix, values


def test_legacy_checkpoint_loads_for_play(legacy_checkpoint, tmp_path, monkeypatch, capsys):
    import gymnasium as gym
    import tensorflow.compat.v1 as tf

    import env
    import play
    from architecture import A2CPolicy
    from model import Model
    prefix, values = legacy_checkpoint
    # Model.load: the weights exactly, the optimiser state left fresh (returns False)
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as sess, sess.as_default():
        m = Model(A2CPolicy, gym.spaces.Box(0, 255, (96, 96, 4), np.uint8), gym.spaces.Discrete(7), 1, 1,
                  0.0, 0.0, None)
        assert m.load(prefix) is False
        for param, value in zip(m.params, sess.run(m.params)):
            assert np.array_equal(value, values[param.op.name]), param.op.name

    # play.py's default 'latest' finds models/<N>/model.ckpt when models/latest does not exist
    import faulty_envs
    monkeypatch.setattr(env, "make_level", lambda game, level, render_mode=None, frame_sink=None:
                        faulty_envs.ImageEnv(episode_length=8))
    code = call_bounded(lambda: play.main(["--models-dir", str(tmp_path / "models"), "--episodes", "2",
                                           "--no-window"]), 120)
    out = capsys.readouterr().out
    assert code == 0
    assert f"with {prefix}" in out
    assert "episode 2: score" in out


def test_legacy_checkpoint_starts_a_new_run_with_init_weights(legacy_checkpoint, tmp_path, monkeypatch, capsys):
    """agent.py --init-weights models/260/model.ckpt: the new run starts from those weights (a learning rate of
    1e-30 leaves them in place for one update, so the first checkpoint holds them) with fresh RMSProp slots."""
    import agent
    import env
    prefix, values = legacy_checkpoint
    legacy_before = tree_snapshot(os.path.dirname(prefix))
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
    code = call_bounded(lambda: agent.main([
        "--init-weights", prefix, "--lr", "1e-30", "--num-envs", "2", "--nsteps", "32", "--total-timesteps", "64",
        "--noptepochs", "1", "--nminibatches", "2",
        "--run-name", "from2018", "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "models"),
        "--no-progress", "--tf-threads", "1"]), 300)
    assert code == 0, capsys.readouterr().err
    first = read_variables(str(tmp_path / "runs" / "from2018" / "checkpoints" / "000001" / "model.ckpt"))
    for name, value in values.items():
        np.testing.assert_allclose(first[name], value, rtol=0, atol=1e-6, err_msg=name)
    assert read_pointer(tmp_path / "models" / "latest").endswith("from2018/checkpoints/000001")
    assert tree_snapshot(os.path.dirname(prefix)) == legacy_before, "the 2018 checkpoint was modified"


def test_learn_refuses_a_checkpoint_with_training_state_it_does_not_know(tmp_path):
    """learn(resume_from=...) called directly (not through agent.py): one CheckpointError that names the unknown
    field and says what to do, raised before anything of the run is written."""
    from checkpoint import CheckpointError
    run = tmp_path / "runs" / "r"
    call_bounded(lambda: learn_fake(run, updates=1), 300)
    folder = run / "checkpoints" / "000001"
    saved = state(folder)
    saved["training"]["adaptive_lr"] = 0.5
    with open(folder / "state.json", "w") as fh:
        json.dump(saved, fh)
    before = tree_snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"does not know \(adaptive_lr\).*--init-weights"):
        call_bounded(lambda: learn_fake(run, updates=2, resume_from=folder), 300)
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("old_settings, loss_options", [
    ({"clip_range": 0.2, "ratio_cap": 1.0}, ["--policy-loss", "clip", "--clip-range", "0.2"]),   # the clip won
    ({"clip_range": 0.0, "ratio_cap": 1.0}, ["--policy-loss", "capped", "--ratio-cap", "1"]),
    ({"clip_range": 0.0, "ratio_cap": 0.0}, ["--policy-loss", "a2c"])])
def test_a_run_saved_before_policy_loss_resumes_with_the_loss_its_settings_chose(tmp_path, monkeypatch, old_settings,
                                                                                  loss_options):
    """Before --policy-loss, a run's config.json and state.json named its loss by clip_range and ratio_cap (the clip
    taking precedence over the cap; both 0: A2C's). Such a run, resumed with `--resume RUN` alone, trains with that
    loss: its second update is, bit for bit, the one of a run that took both updates with today's option."""
    import agent
    import env
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
    base = ["--num-envs", "2", "--nsteps", "32", "--log-interval", "1", "--noptepochs", "2", "--nminibatches", "2",
            "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "models"), "--no-progress",
            "--tf-threads", "1"]
    assert call_bounded(lambda: agent.main([*base, *loss_options, "--total-timesteps", "128", "--run-name", "whole"]),
                        300) == 0
    assert call_bounded(lambda: agent.main([*base, *loss_options, "--total-timesteps", "64", "--run-name", "old"]),
                        300) == 0
    old = tmp_path / "runs" / "old"
    for path in [old / "config.json", *old.glob("checkpoints/*/state.json")]:   # as the earlier version wrote them
        saved = json.loads(path.read_text())
        settings = saved.get("config", saved)
        del settings["policy_loss"]
        settings.update(old_settings)
        path.write_text(json.dumps(saved))
    assert call_bounded(lambda: agent.main(["--resume", str(old), "--total-timesteps", "128", "--no-progress",
                                            "--tf-threads", "1", "--models-dir", str(tmp_path / "models")]),
                        300) == 0
    whole = read_variables(str(tmp_path / "runs" / "whole" / "checkpoints" / "000002" / "model.ckpt"))
    resumed = read_variables(str(old / "checkpoints" / "000002" / "model.ckpt"))
    assert sorted(whole) == sorted(resumed)
    assert not [name for name in whole if not np.array_equal(whole[name], resumed[name])]
    assert state(old / "checkpoints" / "000002")["config"]["policy_loss"] == loss_options[1]
