"""Observations through shared memory (vec_env.SharedObs): the segment is anonymous (memfd), so /dev/shm holds
nothing of a vector env while it runs nor after it ends however it ends (normal exit, an error, Ctrl-C, a SIGKILL
of the learner), and every process that mapped it is gone soon after; a restarted worker maps it again."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import faulty_envs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# the learner of the subprocess tests: prints its workers' pids, then steps until told how to end
LEARNER = r"""
import faulthandler, os, signal, sys, time
sys.path[:0] = [{root!r}, {here!r}]
faulthandler.register(signal.SIGUSR1, all_threads=True)   # the test asks for the stacks of a learner that hangs
# Ctrl-C raises KeyboardInterrupt, as in a terminal, also when the tests were started in the background (where the
# shell hands its children SIGINT ignored, and Python then leaves it so)
signal.signal(signal.SIGINT, signal.default_int_handler)


def main(how):
    import faulty_envs
    from vec_env import SubprocVecEnv
    venv = SubprocVecEnv(faulty_envs.env_fns(2, 7), seed=3)
    assert venv.shared is not None
    venv.reset()
    print(" ".join(str(p.pid) for p in venv.procs), flush=True)
    for step in range(10 ** 9):
        venv.step([step % 7, 1])
        if step == 20:
            print("stepping", flush=True)
            if how == "normal":
                venv.close()
                return
            if how == "error":
                raise RuntimeError("an error in the learner")


if __name__ == "__main__":   # the fork server imports this module as __mp_main__
    main(sys.argv[1])
"""


def shm_entries() -> set:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def mapped_by(pid: int) -> bool:
    """Whether process pid maps a SharedObs segment (False when it is gone)."""
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return "sonic-a2c-obs" in fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def gone(pids, timeout: float = 15.0) -> list:
    """The pids still alive (and not zombies) after up to `timeout` s."""
    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def test_observations_go_through_an_anonymous_segment():
    from vec_env import DummyVecEnv, SubprocVecEnv
    before = shm_entries()
    with SubprocVecEnv(faulty_envs.env_fns(3, 5), seed=2) as venv, DummyVecEnv(faulty_envs.env_fns(3, 5), seed=2) as ref:
        assert venv.shared is not None and mapped_by(os.getpid())
        assert all(mapped_by(proc.pid) for proc in venv.procs)
        np.testing.assert_array_equal(venv.reset(), ref.reset())
        for step in range(12):   # episodes of 5 steps end and restart in between
            got, want = venv.step([step % 7, 2, 5]), ref.step([step % 7, 2, 5])
            for a, b in zip(got[:3], want[:3]):
                np.testing.assert_array_equal(a, b)
            assert [i.keys() for i in got[3]] == [i.keys() for i in want[3]]
        assert shm_entries() == before
    assert not mapped_by(os.getpid())


def test_without_shared_obs_the_pipe_carries_them():
    from vec_env import SubprocVecEnv
    with SubprocVecEnv(faulty_envs.env_fns(2, 5), seed=2, shared_obs=False) as venv:
        assert venv.shared is None and venv.reset().shape == (2, *faulty_envs.SHAPE)


def test_a_restarted_worker_maps_the_segment_again():
    from vec_env import SubprocVecEnv
    with SubprocVecEnv(faulty_envs.env_fns(2, 16, failing=1, fail_after=3, mode="kill"), seed=4,
                       restart=True, timeout=10) as venv:
        venv.reset()
        for _ in range(2):
            venv.step([0, 0])
        obs, _, dones, infos = venv.step([0, 0])
        assert venv.restarts == 1 and dones[1] and "worker_restarted" in infos[1]
        assert mapped_by(venv.procs[1].pid)
        fresh = faulty_envs.make_failing_env(1, fail_after=10 ** 6)
        np.testing.assert_array_equal(obs[1], fresh.reset(seed=4 + 1 + 1_000_003)[0])
        obs, *_ = venv.step([0, 0])   # the new worker's steps arrive through the segment too
        np.testing.assert_array_equal(obs[1], fresh.step(0)[0])


@pytest.mark.parametrize("how", ["normal", "error", "SIGINT", "SIGKILL"])
def test_nothing_is_left_however_the_learner_ends(tmp_path, how):
    script = tmp_path / "learner.py"
    script.write_text(LEARNER.format(root=ROOT, here=HERE))
    before = shm_entries()
    proc = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2 and proc.stdout.readline().strip() == "stepping"
        assert shm_entries() == before   # nothing named while it runs either
        if how in ("SIGINT", "SIGKILL"):
            os.killpg(proc.pid, signal.SIGINT) if how == "SIGINT" else proc.kill()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:   # say where it hangs: the learner's stacks, its processes' states
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(2)
            states = subprocess.run(["ps", "-o", "pid,stat,wchan:30,args", "-g", str(proc.pid)], capture_output=True,
                                    text=True).stdout
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate()
            pytest.fail(f"the learner did not end within 30 s ({how}); its stacks:\n{stderr[-6000:]}\n{states}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    # Python ends on an uncaught KeyboardInterrupt by the signal itself
    expected = {"normal": 0, "error": 1, "SIGINT": -signal.SIGINT, "SIGKILL": -signal.SIGKILL}[how]
    assert proc.returncode == expected
    assert gone(workers) == [], "workers outlived their learner"
    assert shm_entries() == before
    assert not any(mapped_by(pid) for pid in workers)
