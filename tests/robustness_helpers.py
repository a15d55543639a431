"""Shared helpers of the robustness tests (test_kill, test_signals, test_worker_failure, test_resume,
test_bad_input, test_nonfinite). TensorFlow is imported lazily, inside the functions that need it."""
import ctypes
import hashlib
import io
import os
import subprocess
import sys
import threading

import psutil
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:      # env workers unpickle faulty_envs' factories: they must find the module
    sys.path.insert(0, HERE)

import faulty_envs  # noqa: E402

# agent.py on the embedded default game, small enough for a 2-core machine
PR_SET_CHILD_SUBREAPER = 36

SMALL_RUN = ["--num-envs", "2", "--nsteps", "32", "--noptepochs", "2", "--nminibatches", "4", "--log-interval", "1",
             "--keep-checkpoints", "2", "--no-progress", "--tf-threads", "1"]


def script_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def script_command(script: str, *args) -> list:
    return [sys.executable, "-u", os.path.join(ROOT, script), *map(str, args)]


def run_script(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run agent.py / play.py to its end (never longer than `timeout` s: a hang fails the test)."""
    return subprocess.run(script_command(script, *args), cwd=ROOT, env=script_env(), capture_output=True,
                          text=True, timeout=timeout)


def start_agent_until_checkpoint(runs, models, poll: float = 0.1, timeout: float = 180):
    """Start a long agent.py run (run 'r', its own process group) and wait for its first checkpoint.
    -> (the Popen, [the learner and all its descendants as psutil.Process])"""
    import time
    proc = subprocess.Popen(script_command("agent.py", *SMALL_RUN, "--total-timesteps", "100000", "--run-name", "r",
                                           "--runs-dir", runs, "--models-dir", models),
                            cwd=ROOT, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while read_pointer(os.path.join(runs, "r", "checkpoints", "latest")) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no checkpoint within {timeout} s (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(poll)
    learner = psutil.Process(proc.pid)
    return proc, [learner] + learner.children(recursive=True)


def error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error_line(stderr: str, *fragments) -> str:
    """stderr holds exactly one 'error: ...' line, no Python traceback, and the line holds every fragment."""
    assert "Traceback (most recent call last)" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tree_snapshot(*roots) -> dict:
    """Every folder and file under `roots`: path -> 'dir' or (size, mtime_ns, sha1 of the content)."""
    out = {}
    for root in map(str, roots):
        for folder, dirs, files in os.walk(root):
            out[folder] = "dir"
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as fh:
                    digest = hashlib.sha1(fh.read()).hexdigest()
                stat = os.stat(path)
                out[path] = (stat.st_size, stat.st_mtime_ns, digest)
    return out


def read_pointer(path):
    try:
        with open(path) as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def read_variables(prefix: str) -> dict:
    """Every tensor of a TF checkpoint (reading each one checks the data file): name -> numpy array."""
    import tensorflow.compat.v1 as tf
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def check_checkpoint(folder: str) -> dict:
    """Assert `folder` is a complete checkpoint whose state and every tensor read back; returns its state."""
    import json
    assert os.path.isdir(folder), f"{folder} does not exist"
    assert os.path.isfile(os.path.join(folder, "model.ckpt.index")), f"{folder} has no model.ckpt.index"
    with open(os.path.join(folder, "state.json")) as fh:
        state = json.load(fh)
    variables = read_variables(os.path.join(folder, "model.ckpt"))
    assert "model/conv2d/kernel" in variables, sorted(variables)
    assert any(name.startswith(("model/conv2d/kernel/RMSProp", "model/conv2d/kernel/Adam"))
               for name in variables), sorted(variables)   # an optimizer slot
    return state


def call_bounded(fn, timeout: float):
    """fn() in a daemon thread; its result, its exception, or AssertionError when it runs past `timeout` s
    (a hang fails the test instead of blocking the suite)."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s: hung"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def learn_fake(run_dir, *, updates: int, nenvs: int = 2, nsteps: int = 16, episode_length: int = 16,
               resume_from=None, fns=None, venv_kwargs=None, seed: int = 5, **kwargs) -> str:
    """model.learn on SubprocVecEnv workers of faulty_envs image envs, in this process, for `updates` updates
    in all (a resumed run counts the earlier ones). Returns the printed output; learn's errors propagate."""
    from architecture import A2CPolicy
    from model import learn
    from vec_env import SubprocVecEnv
    run_dir = str(run_dir)
    base = os.path.dirname(os.path.dirname(run_dir))
    fns = fns or faulty_envs.env_fns(nenvs, episode_length)
    options = dict(noptepochs=1, nminibatches=2, log_interval=1, keep_checkpoints=5, runs_dir=os.path.dirname(run_dir),
                   models_dir=os.path.join(base, "models"), progress=False, tf_threads=1, lr=2e-4)
    options.update(kwargs)
    stream = io.StringIO()
    venv = SubprocVecEnv(fns, seed=seed, names=faulty_envs.names(len(fns)), **(venv_kwargs or {}))
    try:
        learn(A2CPolicy, venv, nsteps, updates * len(fns) * nsteps, 0.99, 0.95, 0.5, 0.01,
              options.pop("lr"), 0.5, options.pop("log_interval"), seed=seed, run_dir=run_dir,
              resume_from=resume_from and str(resume_from), stream=stream, **options)
    finally:
        venv.close()
    return stream.getvalue()


def fake_env_fns(episode_length: int = 16, **kwargs):
    """A stand-in for env.env_fns (monkeypatched in agent.main tests): faulty_envs image envs, any game."""
    def env_fns(num_envs, game=None, levels=None):
        return faulty_envs.env_fns(num_envs, episode_length, **kwargs)
    return env_fns


@pytest.fixture
def subreaper():
    """This test process becomes the subreaper of its descendants (PR_SET_CHILD_SUBREAPER) for one test: an
    orphan of a run is re-parented here, not to init, so it stays visible (a zombie until reap_orphans) and
    can be reaped; on this machine init reaps orphans late, if at all."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available")
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reap_orphans(processes) -> list:
    """Reap those of `processes` that were adopted by this (subreaper) process; returns them as 'pid name'."""
    adopted = []
    for proc in processes:
        try:
            pid, _ = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            continue                      # not (or no longer) a child of this process
        adopted.append(f"{proc.pid} {getattr(proc, '_name', None) or ''}".strip())
        if pid == 0:                      # adopted and still running: stop it, then reap it
            try:
                os.kill(proc.pid, 9)
                os.waitpid(proc.pid, 0)
            except (ChildProcessError, ProcessLookupError):
                pass
    return adopted


def descendants(pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(processes) -> list:
    """The processes of `processes` still in the process table (zombies included), as 'pid name status'."""
    out = []
    for proc in processes:
        try:
            if proc.is_running():
                out.append(f"{proc.pid} {proc.name()} {proc.status()}")
        except psutil.NoSuchProcess:
            pass
    return out

