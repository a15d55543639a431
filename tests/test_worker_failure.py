"""An env worker that raises or dies: the learner names the env and level and the cause within seconds, saves
a checkpoint and stops cleanly (never hangs); with restarts on, training goes on and worker_restarts counts.

In-process tests run SubprocVecEnv + model.learn on faulty_envs (agent.py cannot select fake envs) or
agent.main with env.env_fns monkeypatched; the SIGKILLed worker is a real agent.py run on the default game.
"""
import csv
import functools
import os
import signal
import subprocess
import sys
import time

import pytest

import faulty_envs
from robustness_helpers import (ROOT, alive, assert_one_error_line, call_bounded, check_checkpoint, fake_env_fns,
                                learn_fake, read_pointer, reap_orphans, start_agent_until_checkpoint,
                                subreaper)  # noqa: F401  (a fixture)

BOUND = 60   # seconds: "within seconds, not hung" (generous for a loaded 2-core machine)


def test_raising_worker_is_named_and_the_last_update_saved(tmp_path):
    """Env 1 raises at its 40th step (nsteps 16: during update 3); log_interval 10 saved only update 1, so the
    failure path saves update 2 before it re-raises WorkerError."""
    from vec_env import WorkerError
    run = tmp_path / "runs" / "r"
    fns = faulty_envs.env_fns(2, 16, failing=1, fail_after=40)
    started = time.monotonic()
    with pytest.raises(WorkerError) as caught:
        call_bounded(lambda: learn_fake(run, updates=10, fns=fns, log_interval=10), BOUND + 60)
    error = caught.value
    assert error.env_idx == 1 and error.name == "fake/level-1"
    assert str(error) == "env 1 (fake/level-1) failed: RuntimeError: fake emulator failure at step 40 of level-1"
    assert "Traceback (most recent call last)" in error.details and "faulty_envs.py" in error.details
    assert time.monotonic() - started < BOUND + 60
    assert read_pointer(run / "checkpoints" / "latest") == "000002"
    assert check_checkpoint(str(run / "checkpoints" / "000002"))["training"]["update"] == 2


def test_killed_worker_is_reported_by_the_vector_env():
    from vec_env import SubprocVecEnv, WorkerError
    venv = SubprocVecEnv(faulty_envs.env_fns(3, 16, failing=2, fail_after=3, mode="kill"),
                         names=faulty_envs.names(3))
    workers = list(venv.procs)
    try:
        venv.reset()
        started = time.monotonic()
        with pytest.raises(WorkerError) as caught:
            for _ in range(5):
                call_bounded(lambda: venv.step([0, 0, 0]), BOUND)
        assert time.monotonic() - started < BOUND
        assert caught.value.env_idx == 2
        assert str(caught.value) == "env 2 (fake/level-2) failed: its process died (exit code -9)"
    finally:
        venv.close()
    assert not any(proc.is_alive() for proc in workers)


@pytest.mark.parametrize("mode", ["hang", "stall-mid-message"])
def test_hung_worker_is_reported_and_closed(mode):
    """A worker that stops answering ('hang'), or that writes the length of its 37 KB answer and stops itself
    (SIGSTOP) before the body ('stall-mid-message'): the wait on it is bounded as a whole, so WorkerError
    '(hung)' comes within the vector env's timeout (2 s here) and a second, and close() still ends it (it ignores
    SIGTERM, so close escalates to SIGKILL)."""
    from vec_env import SubprocVecEnv, WorkerError
    venv = SubprocVecEnv(faulty_envs.env_fns(2, 16, failing=0, fail_after=2, mode=mode),
                         names=faulty_envs.names(2), timeout=2)
    workers = list(venv.procs)
    try:
        venv.reset()
        venv.step([0, 0])
        started = time.monotonic()
        with pytest.raises(WorkerError) as caught:
            call_bounded(lambda: venv.step([0, 0]), BOUND)
        assert time.monotonic() - started < 2 + 1
        assert str(caught.value) == "env 0 (fake/level-0) failed: no answer to 'step' within 2 s (hung)"
    finally:
        call_bounded(venv.close, BOUND)
    assert not any(proc.is_alive() for proc in workers)


def test_restart_workers_goes_on_and_counts(tmp_path):
    """Env 0 kills itself once (SIGKILL) and env 1 raises once: with restart on, both are replaced, the run
    completes its 4 updates, and worker_restarts counts 2 in the table and the checkpoint."""
    run = tmp_path / "runs" / "r"
    fns = [functools.partial(faulty_envs.make_failing_env, 0, fail_after=10, mode="kill",
                             marker=str(tmp_path / "killed-once")),
           functools.partial(faulty_envs.make_failing_env, 1, fail_after=20, mode="raise",
                             marker=str(tmp_path / "raised-once"))]
    call_bounded(lambda: learn_fake(run, updates=4, fns=fns, venv_kwargs={"restart": True}), BOUND + 120)
    assert (tmp_path / "killed-once").exists() and (tmp_path / "raised-once").exists()
    with open(run / "progress.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["nupdates"]) for r in rows] == [1, 2, 3, 4]
    assert [int(r["worker_restarts"]) for r in rows] == [1, 2, 2, 2]
    assert check_checkpoint(str(run / "checkpoints" / "000004"))["training"]["worker_restarts"] == 2


def test_agent_exits_1_naming_env_and_level(tmp_path, monkeypatch, capsys):
    """agent.main with env 1 raising during update 2: exit code 1, the error line names env 1 and its level."""
    import agent
    import env
    monkeypatch.setattr(env, "env_fns", fake_env_fns(episode_length=32, failing=1, fail_after=40))
    started = time.monotonic()
    code = call_bounded(lambda: agent.main([
        "--num-envs", "2", "--nsteps", "32", "--noptepochs", "1", "--nminibatches", "2", "--total-timesteps",
        "640", "--log-interval", "1", "--run-name", "r", "--runs-dir", str(tmp_path / "runs"),
        "--models-dir", str(tmp_path / "models"), "--no-progress", "--tf-threads", "1"]), BOUND + 120)
    assert time.monotonic() - started < BOUND + 120
    captured = capsys.readouterr()
    assert code == 1
    assert_one_error_line(captured.err, "error: env 1 (Airstriker-Genesis-v0/Level1) failed: RuntimeError: fake "
                                        "emulator failure at step 40 of level-1")
    assert "the worker's traceback:\nTraceback (most recent call last)" in captured.out   # in the log, for a bug report
    assert read_pointer(tmp_path / "runs" / "r" / "checkpoints" / "latest") == "000001"


def test_sigkilled_worker_of_a_real_run(tmp_path, subreaper):
    """agent.py on the default game; one emulator worker is killed with SIGKILL: exit code 1 within the bound,
    one error line naming the env, its level and the cause, the last checkpoint complete, no process left."""
    runs, models = tmp_path / "runs", tmp_path / "models"
    proc, family = start_agent_until_checkpoint(runs, models)
    try:
        workers = [p for p in family if "forkserver" in " ".join(p.cmdline()) and p.ppid() != proc.pid]
        assert len(workers) == 2, [p.cmdline() for p in family]
        victim = workers[1]
        env_idx = [p.pid for p in sorted(workers, key=lambda p: p.create_time())].index(victim.pid)
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=BOUND)
        assert time.monotonic() - killed_at < BOUND
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 1, (out[-2000:], err[-3000:])
    assert_one_error_line(err, f"error: env {env_idx} (Airstriker-Genesis-v0/Level1) failed: its process died "
                               "(exit code -9)")
    latest = read_pointer(runs / "r" / "checkpoints" / "latest")
    check_checkpoint(str(runs / "r" / "checkpoints" / latest))
    assert reap_orphans(family[1:]) == [], "processes orphaned by agent.py"
    assert alive(family) == [], "processes left behind"


def test_faulty_envs_import_without_tensorflow():
    """Env workers import faulty_envs in fresh processes: it must not pull TensorFlow in."""
    code = ("import sys; sys.path.insert(0, 'tests'); import faulty_envs; env = faulty_envs.make_image_env(); "
            "env.reset(seed=1); env.step(0); assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
