"""A SIGTERM stops a training run whose worker stopped itself in the middle of an answer (its length sent,
its body not): the learner is not stuck in a read, so it ends within the worker timeout and a few seconds,
and no process of it is left."""
import os
import signal
import subprocess
import sys
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUT = 5

SCRIPT = r"""
import sys
sys.path[:0] = [{root!r}, {here!r}]


def main(run_dir):
    import faulty_envs
    from robustness_helpers import learn_fake
    fns = faulty_envs.env_fns(2, 16, failing=0, fail_after=40, mode="stall-mid-message")
    learn_fake(run_dir, updates=100, fns=fns, venv_kwargs={{"timeout": {timeout}}})


if __name__ == "__main__":   # the fork server imports this module as __mp_main__
    main(sys.argv[1])
"""


def stopped_child(pid: int):
    """The pid of a stopped descendant of pid (a worker stopped by SIGSTOP), or None."""
    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in family:
        try:
            if child.status() == psutil.STATUS_STOPPED:
                return child.pid
        except psutil.NoSuchProcess:
            pass
    return None


def test_sigterm_stops_a_run_whose_worker_stalled_mid_answer(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=ROOT, here=HERE, timeout=TIMEOUT))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs" / "r")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while stopped_child(proc.pid) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and stopped_child(proc.pid), "the worker never stalled"
        family = psutil.Process(proc.pid).children(recursive=True)
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=TIMEOUT + 30)
        assert time.monotonic() - sent < TIMEOUT + 10
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0
    assert "(hung)" in err, err[-2000:]
    _gone, left = psutil.wait_procs(family, timeout=10)
    assert not [p for p in left if p.status() != psutil.STATUS_ZOMBIE], "processes of the run were left"
