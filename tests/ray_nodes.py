"""Ray nodes started as the README starts them, with the `ray` command (`ray start --head`, `ray start
--address`), for tests/test_ray_cluster.py; and stopped again by process id, never by name (`ray stop` would
stop every Ray of this machine, the developer's included).

`ray start` leaves its processes (GCS, raylet, agents, and later the workers and their env processes) running
after it returns. Each node's `ray start` runs in a session of its own, so every process of that node carries
its session id, which is how `stop` finds them all.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil

RAY = os.path.join(os.path.dirname(sys.executable), "ray")   # the virtual environment's `ray` command
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token_home(folder: str) -> str:
    """`folder` made a home directory holding a fresh Ray token in .ray/auth_token (where `ray start --head`
    and `ray get-auth-token --generate` keep it). -> its path."""
    os.makedirs(os.path.join(folder, ".ray"), exist_ok=True)
    with open(os.path.join(folder, ".ray", "auth_token"), "w") as file:
        file.write(secrets.token_hex(32))
    return folder


def clean_env(home: str, **extra) -> dict:
    """This process's environment with HOME = `home` and none of Ray's token variables (a Ray started by an
    earlier test in this process sets RAY_AUTH_MODE here), plus `extra`."""
    env = {name: value for name, value in os.environ.items() if name not in AUTH_VARS}
    return dict(env, HOME=home, **extra)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_processes(session: int) -> list:
    """The live processes whose session id is `session`, and their descendants (in case one left it)."""
    found = {}
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == session and alive(proc.pid):
                found[proc.pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True) if alive(child.pid))
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    return list(found.values())


def kill_session(session: int, sig=signal.SIGKILL) -> list:
    """Send `sig` to every process of the session. -> their pids."""
    pids = []
    for proc in session_processes(session):
        try:
            proc.send_signal(sig)
            pids.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def wait_gone(pids, timeout: float) -> list:
    """The pids still running after waiting up to `timeout` s for them to exit (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    running = [pid for pid in pids if alive(pid)]
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = [pid for pid in running if alive(pid)]
    return running


class RayNode:
    """One Ray node started with `ray start ARGS --temp-dir DIR` in a session of its own.

    args: `ray start`'s options (`--head --port P ...` or `--address HOST:PORT ...`); env: its environment.
    Attributes: output (what `ray start` printed), temp_dir (short: Ray's socket paths must stay under 108
    characters, which a pytest tmp_path can pass), session (the session id of all its processes), pids (every
    pid seen and stopped by stop()). Raises RuntimeError, with `ray start`'s output, when it fails; the node's
    processes are stopped first.
    """

    def __init__(self, args, env: dict):
        self.temp_dir = tempfile.mkdtemp(prefix="rayt-")
        self.pids = set()
        process = subprocess.Popen([RAY, "start", *args, "--temp-dir", self.temp_dir, "--disable-usage-stats"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        self.session = process.pid
        try:
            self.output, _ = process.communicate(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            self.output, _ = process.communicate()
        if process.returncode != 0:
            left = self.stop()
            raise RuntimeError(f"`ray start {' '.join(args)}` failed ({process.returncode}; left running: {left}):\n"
                               f"{self.output[-3000:]}")

    def processes(self) -> list:
        return session_processes(self.session)

    def stop(self, timeout: float = 10.0) -> list:
        """SIGTERM every process of the node (as `ray stop` does), SIGKILL those still running after `timeout`
        s; look again, since a raylet being stopped may have started a worker meanwhile. Removes temp_dir.
        -> the pids still running (none, normally)."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0), (signal.SIGKILL, 5.0)):
            pids = kill_session(self.session, sig)
            self.pids.update(pids)
            wait_gone(pids, wait)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return [pid for pid in sorted(self.pids) if alive(pid)] + [p.pid for p in self.processes()]
