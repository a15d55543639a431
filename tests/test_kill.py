"""SIGKILL at random (seeded) moments of a real training run (agent.py on the default game, Airstriker) never
loses the run: after every kill the checkpoints that the pointers name are complete and load, and
`agent.py --resume latest` continues from them (update and timesteps go on from the checkpoint's).

The moments cover sampling and training (a random delay after a checkpoint line, aimed by the measured
length of those phases; the env workers' CPU use just before the kill tells which phase it hit), saving (a
kill shortly after a temporary checkpoint folder appears) and start-up (loading, folder clean-up, log
rewind). Each kill takes the whole process group (the learner, the forkserver, the resource tracker, the env
workers); the test adopts the orphans (PR_SET_CHILD_SUBREAPER: this machine's init reaps them late, if at
all), reaps them and checks that no process of the group remains.
"""
import glob
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import psutil

from robustness_helpers import (ROOT, SMALL_RUN, check_checkpoint, read_pointer, script_command, script_env,
                                subreaper)  # noqa: F401  (a fixture)

SEED = 20180405
PHASES = ["sampling", "training", "saving"] * 3 + ["startup"]    # 10 kills; the first is 'sampling'
BATCH = 2 * 32                                                    # --num-envs 2 --nsteps 32
CHECKPOINT_LINE = re.compile(r"^checkpoint: (\S+)$")


class Run:
    """One agent.py process in its own session, its stdout lines time-stamped by a reader thread."""

    def __init__(self, args, stderr_path):
        self.stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen(script_command("agent.py", *args), cwd=ROOT, env=script_env(),
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, start_new_session=True)
        self.lines = []   # (monotonic time, line)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def checkpoints(self) -> list:
        """(time, update) of every 'checkpoint: PATH' line so far."""
        out = []
        for stamp, line in list(self.lines):
            match = CHECKPOINT_LINE.match(line)
            if match:
                out.append((stamp, int(os.path.basename(match.group(1)))))
        return out

    def table_ends(self) -> list:
        """Times of the last line of each table row (printed when training of an update is done)."""
        return [stamp for stamp, line in list(self.lines) if line.startswith("| minibatch_steps")]

    def wait_for_checkpoints(self, count: int, timeout: float = 180) -> list:
        deadline = time.monotonic() + timeout
        while len(self.checkpoints()) < count:
            assert self.proc.poll() is None, f"agent.py exited ({self.proc.returncode}): {self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no checkpoint within {timeout} s: {self.output()[-3000:]}"
            time.sleep(0.01)
        return self.checkpoints()

    def workers(self) -> list:
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for proc in family:
            try:
                if proc.ppid() != self.proc.pid and "forkserver" in " ".join(proc.cmdline()):
                    out.append(proc)
            except psutil.NoSuchProcess:
                pass
        return out

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def kill_group(self) -> None:
        """SIGKILL the whole process group, reap the learner and every adopted orphan of the group, and assert
        that no process of the group remains."""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        self.stderr.close()
        deadline = time.monotonic() + 15
        while True:
            members = []
            for pid in psutil.pids():
                try:
                    if os.getpgid(pid) == pgid:
                        members.append(pid)
                except OSError:
                    pass
            for pid in members:
                try:
                    os.waitpid(pid, os.WNOHANG)   # an adopted orphan (zombie) of the group
                except ChildProcessError:
                    pass
            if not members:
                return
            assert time.monotonic() < deadline, f"processes of the killed group remain: {members}"
            time.sleep(0.05)


def cpu_seconds(processes) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def check_pointers(run_dir, models_dir) -> int:
    """Every checkpoint a pointer names, and every complete checkpoint folder, loads; returns the update of
    the checkpoint that `--resume latest` takes (models/latest)."""
    checkpoints = os.path.join(run_dir, "checkpoints")
    named = {os.path.join(checkpoints, read_pointer(os.path.join(checkpoints, p)))
             for p in ("latest", "best") if read_pointer(os.path.join(checkpoints, p))}
    target = read_pointer(os.path.join(models_dir, "latest"))
    assert target is not None, "models/latest is missing"
    named.add(target)
    for folder in named:
        check_checkpoint(folder)
    for folder in glob.glob(os.path.join(checkpoints, "[0-9]" * 6)):
        if os.path.isfile(os.path.join(folder, "state.json")) or os.path.isfile(os.path.join(folder, "model.ckpt.index")):
            check_checkpoint(folder)
    with open(os.path.join(target, "state.json")) as fh:
        training = json.load(fh)["training"]
    assert training["timesteps"] == training["update"] * BATCH
    return training["update"]


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path, subreaper, capsys):
    rng = random.Random(SEED)
    phases = PHASES[:1] + rng.sample(PHASES[1:], len(PHASES) - 1)
    runs, models = tmp_path / "runs", tmp_path / "models"
    run_dir = runs / "killed"
    fresh = [*SMALL_RUN, "--total-timesteps", "1000000", "--run-name", "killed", "--runs-dir", runs,
             "--models-dir", models]
    resume = ["--resume", "latest", "--models-dir", models, "--no-progress", "--tf-threads", "1"]

    survived, pending, log = 0, [], []
    run = Run(fresh, tmp_path / "stderr-0.txt")
    expected_first = 1                      # the update of the first checkpoint the current process writes
    cycle = None                            # measured: seconds of sampling + training of one update
    saving = 0.05                           # measured: seconds of one save (table row printed -> checkpoint line)
    for number, phase in enumerate(phases, 1):
        evidence = ""
        if phase == "startup":
            time.sleep(rng.uniform(0.5, 6.0))
            if run.checkpoints():
                evidence = "(after its first checkpoint)"
        else:
            seen = run.wait_for_checkpoints(2 if cycle is None else 1)
            assert seen[0][1] == expected_first, f"resumed at update {seen[0][1]}, expected {expected_first}"
            if cycle is None:               # sampling + training = first table end after a checkpoint line
                start = seen[0][0]
                ends = [t for t in run.table_ends() if t > start]
                cycle = ends[0] - start if ends else 1.5
                if ends and seen[1][0] > ends[0]:
                    saving = seen[1][0] - ends[0]
            survived += len(pending)        # the kills before this process: it resumed and went on
            pending = []
            if phase == "saving":
                deadline = time.monotonic() + 60
                while not glob.glob(str(run_dir / "checkpoints" / "*.tmp-*")):
                    assert time.monotonic() < deadline and run.proc.poll() is None, "no save seen"
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.0, saving / 2))   # the temporary folder lives in the first part
                evidence = "(a temporary checkpoint folder was present"
            else:
                after = run.checkpoints()[-1][0]
                fraction = rng.uniform(0.05, 0.35) if phase == "sampling" else rng.uniform(0.65, 0.95)
                workers = run.workers()
                moment = after + fraction * cycle
                time.sleep(max(0.0, moment - 0.1 - time.monotonic()))
                cpu = cpu_seconds(workers)
                time.sleep(max(0.0, moment - time.monotonic()))
                busy = cpu_seconds(workers) - cpu
                evidence = f"(env workers {'busy' if busy > 0 else 'idle'} in the last 0.1 s)"
        run.kill_group()
        if phase == "saving":
            left = glob.glob(str(run_dir / "checkpoints" / "*.tmp-*"))
            evidence += f"; the kill left {'a temporary folder/file' if left else 'none'})"
        update = check_pointers(run_dir, models)          # nothing corrupt; what --resume latest will take
        pending.append(number)
        log.append(f"kill {number:2d} aimed at {phase:8s} {evidence}; latest checkpoint: update {update}")
        expected_first = update + 1
        if number < len(phases):
            run = Run(resume, tmp_path / f"stderr-{number}.txt")

    # the last resume runs to its end: two more updates, exit code 0
    final_total = (expected_first + 1) * BATCH
    run = Run([*resume, "--total-timesteps", final_total], tmp_path / "stderr-final.txt")
    assert run.proc.wait(timeout=240) == 0, open(tmp_path / "stderr-final.txt").read()[-3000:]
    run.reader.join(timeout=10)
    seen = run.checkpoints()
    assert [u for _, u in seen] == [expected_first, expected_first + 1], run.output()[-3000:]
    survived += len(pending)
    run.kill_group()                                     # nothing left of it either (it exited by itself)

    # the log went on without a duplicated or missing row; no temporary folder is left
    with open(run_dir / "progress.csv") as fh:
        updates = [int(line.split(",")[0]) for line in fh.read().splitlines()[1:]]
    assert updates == list(range(1, expected_first + 2))
    assert not glob.glob(str(run_dir / "checkpoints" / "*.tmp-*"))
    assert check_pointers(run_dir, models) == expected_first + 1

    with capsys.disabled():
        print("\n" + "\n".join(log))
        print(f"kills survived / tried: {survived}/{len(phases)}; processes of killed groups left: 0 "
              f"(measured: sampling + training {cycle:.2f} s, saving {saving:.2f} s per update)")
    assert survived == len(phases)
