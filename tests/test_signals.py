"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM (to the learner alone, as
`kill PID`; to the whole group, as `timeout` or systemd) during a real agent.py run on the default game: the
step in hand finishes, a checkpoint is written, every env worker is closed, a clear line and the shells' exit
code for the signal (130 for SIGINT, 143 for SIGTERM); no process of the run is left (no child, no zombie, no
forkserver) and no /dev/shm entry leaks. Stopped before its first update ends, a run saves nothing: no
untrained checkpoint, models/latest as it was, no run folder left.

The test process is the subreaper of the run (robustness_helpers.subreaper): a helper process that agent.py
left to exit on its own after it (an orphan) would be adopted here and is reported, instead of being reaped
by init some time later or never."""
import os
import re
import signal
import subprocess
import time

import pytest

from robustness_helpers import (ROOT, alive, check_checkpoint, read_pointer, reap_orphans, script_command, script_env,
                                start_agent_until_checkpoint, subreaper)  # noqa: F401  (a fixture)


def shm_entries() -> set:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.mark.parametrize("signum, to_group", [(signal.SIGINT, True), (signal.SIGTERM, False),
                                              (signal.SIGTERM, True)],
                         ids=["SIGINT-group", "SIGTERM-learner", "SIGTERM-group"])
def test_signal_stops_cleanly(tmp_path, subreaper, signum, to_group):
    runs, models = tmp_path / "runs", tmp_path / "models"
    shm_before = shm_entries()
    proc, family = start_agent_until_checkpoint(runs, models)
    try:
        commands = [" ".join(p.cmdline()) for p in family]
        assert sum("multiprocessing.forkserver" in c for c in commands) == 3, commands   # the server, 2 workers
        (os.killpg if to_group else os.kill)(proc.pid, signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, (out[-2000:], err[-3000:])
    assert "Traceback" not in err and "error:" not in err, err[-3000:]
    match = re.search(rf"^{name} received: stopped after update (\d+), checkpoint (\S+)\. "
                      rf"Continue with: python agent\.py --resume (\S+)$", out, re.MULTILINE)
    assert match, out[-2000:]
    update, checkpoint, run = int(match.group(1)), match.group(2), match.group(3)
    assert os.path.samefile(run, runs / "r")
    assert read_pointer(runs / "r" / "checkpoints" / "latest") == os.path.basename(checkpoint) == f"{update:06d}"
    assert check_checkpoint(checkpoint)["training"]["update"] == update
    assert read_pointer(models / "latest") == checkpoint

    # the family held the learner, the forkserver, the resource tracker and the workers
    orphans = reap_orphans(family[1:])
    left = alive(family)
    for _ in range(50):          # polling only, for a process still on its way out
        if not left:
            break
        time.sleep(0.1)
        orphans += reap_orphans(family[1:])
        left = alive(family)
    assert orphans == [], f"processes orphaned by agent.py (left to exit after it): {orphans}"
    assert left == [], f"processes left behind: {left}"
    leaked = shm_entries() - shm_before
    if leaked:                   # another test of the machine may own a transient entry: look again
        time.sleep(2)
        leaked &= shm_entries()
    assert not leaked, f"/dev/shm entries left: {leaked}"


def test_ctrl_c_before_the_first_update_ends_saves_nothing(tmp_path):
    """An early Ctrl-C must not replace the user's trained model: no checkpoint 000000, models/latest still
    names what it named, no run folder left behind, exit code 130."""
    runs, models = tmp_path / "runs", tmp_path / "models"
    models.mkdir()
    trained = str(tmp_path / "earlier-run" / "checkpoints" / "000120")
    (models / "latest").write_text(trained + "\n")
    # one update is 2 x 1024 steps (several seconds); the time estimate is printed after 2% of them
    proc = subprocess.Popen(script_command("agent.py", "--num-envs", "2", "--nsteps", "1024", "--nminibatches", "2",
                                           "--total-timesteps", "100000", "--run-name", "early", "--runs-dir", runs,
                                           "--models-dir", models, "--no-progress", "--tf-threads", "1"),
                            cwd=ROOT, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        lines = []
        for line in proc.stdout:                   # inside the first update: its first steps are collected
            lines.append(line)
            if line.startswith("estimate from the first"):
                break
        assert lines and lines[-1].startswith("estimate from the first"), "".join(lines)
        os.killpg(proc.pid, signal.SIGINT)         # as a terminal's Ctrl-C: the whole process group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    out = "".join(lines) + out
    assert proc.returncode == 130, (out[-2000:], err[-3000:])
    assert "Traceback" not in err and "error:" not in err, err[-3000:]
    assert "SIGINT received before the first update ended: nothing was saved" in out, out[-2000:]
    assert re.search(r"^removed the run folder \S+early \(no update ended\)$", out, re.M), out[-2000:]
    assert read_pointer(models / "latest") == trained
    assert not (runs / "early").exists() and os.listdir(runs) == []
    assert "nupdates" not in out and "checkpoint:" not in out
