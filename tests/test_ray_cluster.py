"""The README's cluster path, for real: a head started with `ray start --head` (token authentication on, as Ray
2.60 turns it on where a token exists), `agent.py --backend ray --ray-address HOST:PORT` training on it with no
Ray variable set, a missing or wrong token refused with one line, and a second node joined with `ray start
--address` whose loss in the middle of a rollout the run survives (worker_restarts counts it). Each node's
processes are stopped by pid (tests/ray_nodes.py), and none may be left. The token is the tests' own, in a
home directory of their own: the developer's ~/.ray is not touched. First, the token lookup on its own."""
import csv
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import ray_backend  # noqa: E402
from errors import ConfigError  # noqa: E402
from ray_nodes import RayNode, clean_env, free_port, kill_session, session_processes, token_home  # noqa: E402

pytestmark = pytest.mark.ray

AGENT_TIMEOUT_S = 600


# ----------------------------------------------------------------------------- the token, without a cluster

@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """No Ray variable set and an empty home directory."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_the_token_is_found_where_ray_looks_in_its_order(no_token, monkeypatch, tmp_path):
    assert ray_backend.token_source() is None
    token_home(str(tmp_path))
    assert ray_backend.token_source() == str(tmp_path / ".ray" / "auth_token")
    path = tmp_path / "copied_token"
    path.write_text("x" * 64)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert ray_backend.token_source() == f"{path} (RAY_AUTH_TOKEN_PATH)"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "y" * 64)
    assert ray_backend.token_source() == "RAY_AUTH_TOKEN"


def test_a_token_path_without_a_token_or_token_mode_without_one_is_one_line(no_token, monkeypatch, tmp_path):
    """Ray aborts the process (a C++ check) on either: they are refused before the head is asked."""
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH is .*missing.* holds no token"):
        ray_backend.ask_head(f"127.0.0.1:{free_port()}")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(ConfigError) as caught:
        ray_backend.ask_head(f"127.0.0.1:{free_port()}")
    message = str(caught.value)
    assert "\n" not in message and "RAY_AUTH_TOKEN " in message and "RAY_AUTH_TOKEN_PATH" in message
    assert "~/.ray/auth_token" in message


# ----------------------------------------------------------------------------- a head started with `ray start`

class Head:
    def __init__(self, node: RayNode, home: str, address: str):
        self.node, self.home, self.address = node, home, address


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head` on free ports, 2 CPUs, in a home directory holding a token of its own; stopped by pid
    at the end, and then none of its processes may be left."""
    home = token_home(str(tmp_path_factory.mktemp("home")))
    port = free_port()
    node = RayNode(["--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                    "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port())],
                   clean_env(home))
    try:
        yield Head(node, home, f"127.0.0.1:{port}")
    finally:
        left = node.stop()
        assert not left, f"processes of the test's Ray head left running: {left}"
        assert node.pids, "stop() found no process of the head"


def run_agent(head: Head, tmp_path, env: dict) -> subprocess.CompletedProcess:
    """agent.py on the head's cluster, two updates of 1 worker x 2 envs of the default game, in a session of
    its own; nothing of that session may be left running once it has returned."""
    command = [sys.executable, os.path.join(ROOT, "agent.py"), "--backend", "ray", "--ray-address", head.address,
               "--num-workers", "1", "--envs-per-worker", "2", "--nsteps", "16", "--nminibatches", "1",
               "--total-timesteps", "64", "--log-interval", "1", "--runs-dir", str(tmp_path / "runs"),
               "--models-dir", str(tmp_path / "models"), "--run-name", "t", "--no-progress"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=AGENT_TIMEOUT_S)
    finally:
        left = [proc.pid for proc in session_processes(process.pid)]
        kill_session(process.pid)   # a timeout's, or what it left: stopped all the same
        process.wait()
    assert not left, f"agent.py left processes running: {left}"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_agent_trains_on_a_head_started_with_ray_start(head, tmp_path):
    """The head wants a token (~/.ray/auth_token of its home); agent.py, with that home and no RAY_AUTH_*
    variable, joins it, trains two updates and writes their checkpoint."""
    assert "Token authentication is enabled" in head.node.output, head.node.output[-2000:]
    result = run_agent(head, tmp_path, clean_env(head.home))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len([line for line in result.stdout.splitlines() if line.startswith("| nupdates")]) == 2, result.stdout
    with open(tmp_path / "runs" / "t" / "progress.csv") as file:
        assert [row["nupdates"] for row in csv.DictReader(file)] == ["1", "2"]
    assert (tmp_path / "runs" / "t" / "checkpoints" / "000002").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no token", "wrong RAY_AUTH_TOKEN", "wrong RAY_AUTH_TOKEN_PATH"])
def test_a_missing_or_wrong_token_is_one_line_naming_what_to_set(head, tmp_path, case):
    """One `error:` line that names the variable or file to set, exit code 2, no run folder."""
    wrong_file = tmp_path / "wrong_token"
    wrong_file.write_text("0" * 64)
    env, expected = {
        "no token": (clean_env(str(tmp_path)), ["wants a token and this machine has none", "~/.ray/auth_token",
                                                "RAY_AUTH_TOKEN ", "RAY_AUTH_TOKEN_PATH"]),
        "wrong RAY_AUTH_TOKEN": (clean_env(head.home, RAY_AUTH_TOKEN="0" * 64),
                                 ["refused the token in RAY_AUTH_TOKEN: set it to the head's token"]),
        "wrong RAY_AUTH_TOKEN_PATH": (clean_env(head.home, RAY_AUTH_TOKEN_PATH=str(wrong_file)),
                                      [f"refused the token in {wrong_file} (RAY_AUTH_TOKEN_PATH): replace that file"]),
    }[case]
    result = run_agent(head, tmp_path, env)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --ray-address"), errors
    assert all(text in errors[0] for text in expected), errors[0]
    assert not (tmp_path / "runs" / "t").exists()


@pytest.mark.slow
def test_token_mode_only_for_a_head_that_wants_the_token(head, no_token, monkeypatch, tmp_path):
    """With a token at hand and RAY_AUTH_MODE unset, the learner joins the tests' head in token mode, and a head
    started without tokens as it is: a driver in token mode would refuse that cluster's workers (its actors
    never start)."""
    monkeypatch.setenv("HOME", head.home)
    assert ray_backend.ask_head(head.address) == ("token", None)
    port = free_port()
    open_head = RayNode(["--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard", "false",
                         "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port())],
                        clean_env(str(tmp_path), RAY_AUTH_MODE="disabled"))
    try:
        assert ray_backend.ask_head(f"127.0.0.1:{port}") == (None, None)
    finally:
        left = open_head.stop()
    assert not left, f"processes of the test's second head left running: {left}"


@pytest.mark.slow
def test_a_node_joined_with_ray_start_is_used_and_its_loss_survived(head, tmp_path):
    """A second node on this machine, joined as the README says (`ray start --address`, RAY_AUTH_MODE=token,
    its own temp dir), gets one of the two workers; it is killed (every process, SIGKILL) early in update 2's
    rollout: its worker is restarted on the head, its rollout collected again, worker_restarts counts 1."""
    node = RayNode(["--address", head.address, "--num-cpus", "1"], clean_env(head.home, RAY_AUTH_MODE="token"))
    try:
        run_dir = tmp_path / "runs" / "run"
        result = subprocess.run([sys.executable, os.path.join(HERE, "node_loss_run.py"), head.address,
                                 str(node.session), node.temp_dir, str(run_dir)], cwd=ROOT,
                                env=clean_env(head.home), capture_output=True, text=True, timeout=AGENT_TIMEOUT_S)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert sorted(report["before"]) == sorted([report["head"], report["other"]]), report
        assert report["killed"] and report["after"] == [report["head"]] * 2, report
        assert report["restarts"] == [0, 1], report
        with open(run_dir / "progress.csv") as file:
            assert [row["worker_restarts"] for row in csv.DictReader(file)] == ["0", "1"]
        assert (run_dir / "checkpoints" / "000002").is_dir()
    finally:
        left = node.stop()
    assert not left, f"processes of the second node left running: {left}"
