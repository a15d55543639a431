"""Rollouts on Ray (ray_backend): the same batch as the local Runner; a lost worker process or node, or a hung
env, survived; no Ray process left behind; bad addresses, too many workers and a missing ROM refused with one
line. Fake image envs (tests/faulty_envs.py), no emulator. The tests that start and stop their own Ray come
first; then one Ray instance serves a class of tests, and a two-node cluster (ray.cluster_utils.Cluster) the
fault tests."""
import dataclasses
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
import ray

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:   # the workers and env processes unpickle faulty_envs' factories
    sys.path.insert(0, HERE)

import faulty_envs  # noqa: E402
import ray_backend  # noqa: E402
from errors import ConfigError, GameError  # noqa: E402
from rollout import Collection  # noqa: E402

pytestmark = pytest.mark.ray

NSTEPS, SEED, EPISODE = 24, 5, 7   # episodes of 7 steps: some end inside every rollout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_processes() -> dict:
    """pid -> command line of every Ray process on this machine (daemons, actors, idle workers)."""
    found = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] in ("raylet", "gcs_server") or command.startswith("ray::") or \
                "/site-packages/ray/" in command:
            found[proc.info["pid"]] = command
    return found


def still_alive(pids, timeout: float = 20.0) -> list:
    """The pids still running after waiting up to `timeout` s for them to exit."""
    from ray_nodes import wait_gone
    return wait_gone(pids, timeout)


def graph_and_model(num_envs: int, venv_like):
    """A fresh graph, session and Model for `num_envs` envs of the fake image env. -> (graph, sess, model)."""
    from batch_fixture import new_model
    return new_model(num_envs, venv_like, NSTEPS, SEED)


def workers_tree(sampler) -> list:
    """pids of every worker's actor process and of its env processes."""
    pids = []
    for pid in sampler.pids.values():
        try:
            pids += [pid] + [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return pids


# ----------------------------------------------------------------------------- without a Ray of the tests

def test_no_cluster_at_the_address_is_one_line_within_30s():
    assert not ray.is_initialized()
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        ray_backend.RaySampler(faulty_envs.env_fns(2), 2, 1, address=f"127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "\n" not in message and "no Ray cluster answers" in message and "ray start --head" in message
    assert not ray.is_initialized()


def test_agent_says_in_one_line_that_no_cluster_answers(tmp_path):
    """agent.py checks the address before it loads TensorFlow: one `error:` line and exit code 2 within 30 s."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, os.path.join(ROOT, "agent.py"), "--backend", "ray", "--ray-address",
                             f"127.0.0.1:{free_port()}", "--runs-dir", str(tmp_path / "runs"), "--models-dir",
                             str(tmp_path / "models")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --ray-address") and "no Ray cluster answers" in errors[0]


def test_a_port_that_is_not_ray_is_one_line_within_30s():
    """Something listens but is no Ray head: ray.init would retry for minutes; the probe gives up in seconds."""
    server = socket.socket()
    server.bind(("", 0))   # on every address: Ray turns 127.0.0.1 into this machine's IP
    server.listen(8)
    stop = threading.Event()

    def accept_and_close():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                pass
    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError) as caught:
            ray_backend.RaySampler(faulty_envs.env_fns(2), 2, 1, address=f"127.0.0.1:{server.getsockname()[1]}")
        assert time.monotonic() - started < 30
        assert "no Ray cluster answers there" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        stop.set()
        thread.join()
        server.close()


def test_a_run_through_learn_on_its_own_ray_leaves_no_ray_process(tmp_path):
    """learn() (the sampler seam) on a Ray started by the sampler: two updates, a checkpoint; then close()
    stops the workers, their env processes and every Ray process it started."""
    from architecture import A2CPolicy
    from config import TrainConfig
    from model import train
    before = set(ray_processes())
    sampler = ray_backend.RaySampler(faulty_envs.env_fns(2, EPISODE), 1, 2, seed=SEED, address="", num_cpus=1,
                                     code_paths=[HERE])
    ours = workers_tree(sampler)
    assert len(ours) >= 3, ours   # the actor, its two env processes (and multiprocessing's fork server)
    stats = []
    try:
        config = TrainConfig(num_envs=2, nsteps=NSTEPS, total_timesteps=2 * 2 * NSTEPS, noptepochs=1, nminibatches=2,
                             log_interval=1, seed=SEED, runs_dir=str(tmp_path), models_dir=str(tmp_path / "models"),
                             progress=False)
        with open(os.devnull, "w") as devnull:
            run = train(A2CPolicy, sampler, config, run_dir=str(tmp_path / "run"), callback=stats.append,
                        stream=devnull)
    finally:
        sampler.close()
    assert [s["update"] for s in stats] == [1, 2]
    assert stats[-1]["weights_bytes"] > 1_000_000 and stats[-1]["rollout_bytes"] > 2 * NSTEPS * 96 * 96
    assert os.path.exists(os.path.join(run, "checkpoints", "000002"))
    assert not ray.is_initialized()
    assert not still_alive(ours), "env or actor processes outlived close()"
    left = still_alive(set(ray_processes()) - before)
    assert not left, f"Ray processes left: {[ray_processes().get(pid) for pid in left]}"


# ----------------------------------------------------------------------------- one Ray instance, one machine

@pytest.fixture(scope="class")
def local_ray():
    assert not ray.is_initialized()
    ray_backend.connect("", num_cpus=4, code_paths=[HERE])
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
class TestOnOneMachine:

    @pytest.mark.parametrize("envs_per_worker, double_buffer", [(1, False), (2, False), (2, True)])
    def test_same_batch_as_the_local_runner(self, envs_per_worker, double_buffer):
        """Two updates through Ray (1 or 2 envs per worker; a worker's 2 envs also double-buffered) and through the
        local Runner, against one Model: frames, actions, rewards, dones, episodes and the generators' states
        identical, values within float tolerance."""
        import model as a2c
        from vec_env import SubprocVecEnv
        num_envs = 2
        rollouts = []
        venv = SubprocVecEnv(faulty_envs.env_fns(num_envs, EPISODE), seed=SEED)
        sampler = ray_backend.RaySampler(faulty_envs.env_fns(num_envs, EPISODE), num_envs // envs_per_worker,
                                         envs_per_worker, seed=SEED)
        graph, sess, model = graph_and_model(num_envs, venv)
        try:
            with graph.as_default(), sess.as_default():
                settings = Collection(NSTEPS, 0.99)
                local = a2c.Runner(venv, model, settings, a2c.action_rngs(SEED, range(num_envs)))
                remote = sampler.sampler(model, a2c.action_rngs(SEED, range(num_envs)),
                                         dataclasses.replace(settings, double_buffer=double_buffer))
                for _ in range(2):
                    steps = []
                    rollouts += [local.sample(), remote.sample(on_step=steps.append)]
                    assert steps[0] == 1 and sum(steps) == NSTEPS   # the first step alone, then all of them
                    local_batch, remote_batch = (a2c.finish(rollout, 0.99, 0.95) for rollout in rollouts[-2:])
                    compare(local_batch, remote_batch, rollouts[-2], rollouts[-1])
                assert [r.bit_generator.state for r in local.rngs] == [r.bit_generator.state for r in remote.rngs]
                assert sum(len(r.episodes) for r in rollouts[-2:]) > 0
                transfer = remote.last_transfer
                assert transfer["weights_bytes"] == sum(v.nbytes for v in sess.run(model.params))
                assert transfer["rollout_bytes"] >= num_envs * NSTEPS * 96 * 96 and transfer["nodes"] == 1
        finally:
            sampler.close()
            venv.close()
            sess.close()

    def test_a_hung_env_restarts_its_worker_and_the_run_goes_on(self, tmp_path):
        """Env 1 stops answering at its 10th step (once over all processes: a marker file): after hang_timeout
        its worker is killed and restarted by Ray, its rollout collected again, and restarts counts it."""
        import model as a2c
        fns = faulty_envs.env_fns(2, EPISODE, failing=1, fail_after=10, mode="hang", marker=str(tmp_path / "hung"))
        sampler = ray_backend.RaySampler(fns, 2, 1, seed=SEED, hang_timeout=5)
        graph, sess, model = graph_and_model(2, sampler)
        try:
            with graph.as_default(), sess.as_default():
                runner = sampler.sampler(model, a2c.action_rngs(SEED, range(2)), Collection(NSTEPS, 0.99))
                hung_pid = sampler.pids[1]
                rollout = runner.sample()
            assert rollout is not None and rollout.actions.shape == (NSTEPS, 2)
            assert (tmp_path / "hung").read_text() == str(hung_pid)
            assert sampler.restarts == 1 and sampler.pids[1] != hung_pid and not still_alive([hung_pid], 0)
        finally:
            sampler.close()
            sess.close()

    def test_more_workers_than_cpus(self):
        with pytest.raises(ConfigError) as caught:
            ray_backend.RaySampler(faulty_envs.env_fns(5), 5, 1)
        assert "--num-workers 5 needs 5 CPUs" in str(caught.value) and "has 4 CPUs on 1 machine" in str(caught.value)

    def test_a_missing_rom_names_the_worker_machine(self):
        import env as envs
        if envs.rom_imported(envs.SONIC_GAME):
            pytest.skip("the Sonic ROM is imported on this machine: no missing ROM to report")
        with pytest.raises(GameError) as caught:
            ray_backend.RaySampler(faulty_envs.env_fns(1), 1, 1, game=envs.SONIC_GAME)
        message = str(caught.value)
        assert platform.node() in message and envs.SONIC_GAME in message and "stable_retro.import" in message
        assert "\n" not in message


def compare(local_batch, remote_batch, local_rollout, remote_rollout) -> None:
    obs, actions, returns, values, neglogpacs, episodes = local_batch
    r_obs, r_actions, r_returns, r_values, r_neglogpacs, r_episodes = remote_batch
    np.testing.assert_array_equal(np.asarray(r_obs), np.asarray(obs))
    np.testing.assert_array_equal(r_actions, actions)
    np.testing.assert_allclose(r_values, values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r_returns, returns, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r_neglogpacs, neglogpacs, rtol=1e-5, atol=1e-5)
    assert r_episodes == episodes
    for name in ("rewards", "dones", "actions"):
        np.testing.assert_array_equal(getattr(remote_rollout, name), getattr(local_rollout, name), err_msg=name)
    np.testing.assert_array_equal(remote_rollout.last_dones, local_rollout.last_dones)


# ----------------------------------------------------------------------------- two nodes: lost workers

@pytest.fixture(scope="class")
def two_nodes():
    """A head with 2 CPUs and a second node with 1: SPREAD puts one worker on each."""
    from ray.cluster_utils import Cluster
    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray_backend.connect(cluster.address, code_paths=[HERE])
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()


class TestFaults:

    def test_lost_process_then_lost_node_restart_and_the_run_goes_on(self, two_nodes):
        """Update 1: the process of the worker on the head is SIGKILLed mid-rollout. Update 2: the other node,
        with the other worker, is removed mid-rollout. Each time the worker comes back (on the head for the lost
        node), its rollout is collected again, restarts counts it, and the batch is whole."""
        cluster, second = two_nodes
        import model as a2c
        sampler = ray_backend.RaySampler(faulty_envs.env_fns(2, EPISODE), 2, 1, seed=SEED, address=cluster.address)
        try:
            nodes = {w: ray.get(sampler.workers[w].ready.remote())["node_id"] for w in range(2)}
            assert set(nodes.values()) == {cluster.head_node.node_id, second.node_id}, nodes
            on_head, on_second = (next(w for w in nodes if nodes[w] == node)
                                  for node in (cluster.head_node.node_id, second.node_id))
            graph, sess, model = graph_and_model(2, sampler)
            with graph.as_default(), sess.as_default():
                runner = sampler.sampler(model, a2c.action_rngs(SEED, range(2)), Collection(200, 0.99))
                killed_pid = sampler.pids[on_head]
                rollout = runner.sample(on_step=once(lambda: os.kill(killed_pid, signal.SIGKILL)))
                assert rollout is not None and rollout.actions.shape == (200, 2)
                assert sampler.restarts == 1 and sampler.pids[on_head] != killed_pid
                rollout = runner.sample(on_step=once(lambda: cluster.remove_node(second)))
                assert rollout is not None and rollout.actions.shape == (200, 2)
                assert sampler.restarts == 2
                assert ray.get(sampler.workers[on_second].ready.remote())["node_id"] == cluster.head_node.node_id
            sess.close()
        finally:
            sampler.close()


def once(action):
    """An on_step that does `action` the first time it is called (at the rollout's first step)."""
    done = []

    def on_step(_vector_steps: int) -> None:
        if not done:
            done.append(action())
    return on_step
