"""A loss, gradient or weight that becomes NaN or infinite: the run stops before saving anything poisoned,
keeps the last good checkpoint, and says which quantity went bad at which update (exit code 1)."""
import glob
import json
import os
import re

import numpy as np

from robustness_helpers import (assert_one_error_line, call_bounded, check_checkpoint, fake_env_fns, read_pointer,
                                read_variables, tree_snapshot)


def test_nonfinite_loss_stops_before_saving(tmp_path, monkeypatch, capsys):
    import agent
    import env
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32))
    runs, models = tmp_path / "runs", tmp_path / "models"
    base = ["--runs-dir", str(runs), "--models-dir", str(models), "--no-progress", "--tf-threads", "1"]
    code = call_bounded(lambda: agent.main(["--num-envs", "2", "--nsteps", "32", "--noptepochs", "1",
                                            "--nminibatches", "2", "--log-interval", "1", "--total-timesteps", "128",
                                            "--run-name", "r", *base]), 300)
    assert code == 0
    run = runs / "r"
    good = run / "checkpoints" / "000002"
    checkpoints_before = tree_snapshot(run / "checkpoints", models)
    capsys.readouterr()

    # a learning rate of 1e30 blows the weights up in the first minibatch of update 3
    code = call_bounded(lambda: agent.main(["--resume", str(run), "--lr", "1e30", "--allow-config-change",
                                            "--total-timesteps", "256", *base]), 300)
    captured = capsys.readouterr()
    assert code == 1, captured.err
    line = assert_one_error_line(captured.err, "at update 3", "nothing was saved from it",
                                 f"The last good checkpoint is {good}", "lower --lr")
    assert re.search(r"the (policy loss|value loss|entropy|gradient norm|weight model/\S+) became "
                     r"(nan|inf|-inf|NaN or infinite)", line), line

    # nothing of update 3 on disk: no checkpoint, no pointer moved, no temporary folder, no table row
    assert tree_snapshot(run / "checkpoints", models) == checkpoints_before
    assert not (run / "checkpoints" / "000003").exists()
    assert read_pointer(run / "checkpoints" / "latest") == "000002"
    assert read_pointer(models / "latest") == str(good)
    assert not glob.glob(str(run / "checkpoints" / "*.tmp-*"))
    with open(run / "progress.csv") as fh:
        assert [line.split(",")[0] for line in fh.read().splitlines()[1:]] == ["1", "2"]
    # the kept checkpoint is whole and finite, and resumes
    state = check_checkpoint(str(good))
    assert state["training"]["update"] == 2
    assert all(np.isfinite(v).all() for v in read_variables(str(good / "model.ckpt")).values())
    code = call_bounded(lambda: agent.main(["--resume", str(run), "--total-timesteps", "192", *base]), 300)
    assert code == 0
    with open(run / "checkpoints" / "000003" / "state.json") as fh:
        assert json.load(fh)["training"]["update"] == 3
    assert os.path.isdir(good)
