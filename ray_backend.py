"""Rollouts on a Ray cluster (`agent.py --backend ray`): many machines step the envs, one learner trains.

Two roles, one class each:
- `RolloutWorker`, a Ray actor: E envs (env indices i .. i+E-1 of the run; one emulator per process: in the
  actor's own process when E == 1, else in a SubprocVecEnv of E processes) and a CPU copy of the policy (a TF1
  graph of `A2CPolicy` in its own graph and session, one thread). Each call loads the weights it is sent, sets
  its envs' action-noise generators, collects with `model.collect` and the learner's collection settings
  (rollout.Collection) and returns the compact Rollout. Between calls it keeps where its envs stand (obs,
  dones), as the local Runner does.
- `RaySampler`, on the learner (a rollout.RemoteEnvs): starts or joins Ray, creates the actors and checks
  them, and makes the learner's sampler (`sampler()` -> `RayRunner`), whose `sample()` returns the Rollout
  that `model.Runner.sample` returns for the same envs.

Every update is synchronous A2C: the weights are read once, put once in Ray's object store (one object that
every worker reads, not one copy per worker), each worker collects with them and the learner joins the
rollouts along the env axis (`Rollout.concat`); the learner computes GAE (`model.finish`). Env i is seeded seed + i and
draws its actions from `model.action_rngs(seed, [i])`, whose state travels with each call and comes back, so
a batch is the same as the local Runner's (tests/test_ray_backend.py) and checkpoints stay exact.

Faults: an actor whose process or node is lost mid-rollout is restarted by Ray (max_restarts; its constructor
rebuilds its envs), never retried silently (max_task_retries 0): the sampler counts the restart, waits for
the actor and collects that worker's rollout again; the rest of the batch is kept.

Joining a running cluster (`--ray-address auto` or HOST:PORT): `check_address` asks the head in a few seconds
whether it answers, and says in one line what is wrong when it does not. A head started by `ray start --head`
where a token exists (~/.ray/auth_token) wants that token from every client, but Ray sends it only in token
mode, which it turns on by itself for `ray start --head` and ray.init('auto') alone: when the head refuses a
client without a token, `ask_head` finds the token where Ray looks for it and the driver joins in token mode
(`use_auth_mode`), so the learner needs no RAY_AUTH_MODE of its own.

Only `--backend ray` imports this module. It imports ray but not TensorFlow: the workers and the runner import
`model` (and so TensorFlow) when they start.
"""
import os
import platform
import socket
import subprocess
import sys
import time

import numpy as np
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, ObjectLostError, RayActorError, \
    RayTaskError

from errors import ConfigError, GameError, WorkerError
from rollout import Collection, RemoteEnvs, Rollout, Sampler

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
POLL_S = 0.1           # how often sample() looks at the workers' progress (and at the stop flag) while it waits
READY_TIMEOUT_S = 600  # a worker (or a restarted one) must be ready within this: TF import, envs started
PROBE_TIMEOUT_S = 20   # an address where something listens must answer as a Ray cluster within this
MAX_FAILURES = 3       # a worker lost this many times in a row (without one rollout between) stops the run
HANG_TIMEOUT_S = 60.0  # a worker that collects no step for this long is hung: restarted (as --worker-timeout)
LOST = (RayActorError, ObjectLostError)   # the worker's process or node is gone, or the rollout it produced


# ----------------------------------------------------------------------------- the worker (a Ray actor)

class Shipped:
    """An ObjectRef handed to an actor method inside a wrapper, so that the method fetches it itself (and the
    fetch is timed) instead of Ray resolving it before the call."""

    def __init__(self, ref):
        self.ref = ref


def node_name() -> str:
    """'hostname (ip)' of this machine, as errors about a worker machine name it."""
    return f"{platform.node()} ({ray.util.get_node_ip_address()})"


def check_rom(game) -> None:
    """Raise GameError naming this machine when `game`'s ROM is not imported here (None: nothing to check)."""
    if game is None:
        return
    import env as envs
    if not envs.rom_imported(game):
        raise GameError(f"the ROM of {game} is not imported on the worker machine {node_name()}: every machine of "
                        "the cluster needs it; import it there with `python -m stable_retro.import DIR` "
                        "(README, section 'Training on a cluster')")


def process_memory(pid: int = None) -> int:
    """PSS (RSS where PSS is unavailable) of process `pid` (default: this one) and its descendants, bytes."""
    import psutil
    root = psutil.Process(pid)
    total = 0
    for proc in [root] + root.children(recursive=True):
        try:
            info = proc.memory_full_info()
            total += getattr(info, "pss", None) or info.rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def rollout_bytes(rollout: Rollout) -> int:
    """Bytes of the arrays a Rollout carries (what a worker sends back, less pickling's few hundred bytes)."""
    obs = rollout.obs
    arrays = [obs.starts] + [a for a in (obs.full, getattr(obs, "first", None), getattr(obs, "frames", None))
                             if a is not None]
    arrays += [getattr(rollout, name) for name in Rollout.FIELDS] + [rollout.last_values, rollout.last_dones]
    return int(sum(a.nbytes for a in arrays))


class EpisodeOrder:
    """A vector env that notes (step, env index) of each finished episode it reports, so that the learner can
    list the episodes of all workers in the local Runner's order (by step, then env). It counts each env's steps
    apart, so a step of some of its envs (step_async / step_wait with `envs`, --double-buffer) counts too."""

    def __init__(self, venv, first_env: int):
        self.venv, self.first_env, self.num_envs = venv, first_env, venv.num_envs
        self.steps, self.keys = [0] * venv.num_envs, []   # steps each env took in this rollout; episode keys

    def step(self, actions) -> tuple:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions, envs=None) -> None:
        self.venv.step_async(actions, envs)

    def step_wait(self, envs=None) -> tuple:
        obs, rewards, dones, infos = self.venv.step_wait(envs)
        for j, info in zip(range(self.num_envs) if envs is None else envs, infos):
            if "episode" in info:
                self.keys.append((self.steps[j], self.first_env + int(j)))
            self.steps[j] += 1
        return obs, rewards, dones, infos


class RolloutWorker:
    """E envs and a CPU copy of the policy; made an actor by RaySampler (`ray.remote(RolloutWorker)`).

    env_fns: the E picklable env factories of envs first_env .. first_env+E-1; seed: the run's seed (env i is
    seeded seed + i); names: their names for messages; game: when given, its ROM must be imported on this
    machine (GameError naming it otherwise); policy: the network class (A2CPolicy).
    """

    def __init__(self, env_fns, first_env: int, seed: int, names=None, game=None, policy=None):
        check_rom(game)
        import model as a2c
        from vec_env import DummyVecEnv, SubprocVecEnv
        self.first_env, self.num_envs = first_env, len(env_fns)
        self.steps = 0   # vector steps of the rollout in progress (read by progress() from another thread)
        # one emulator per process: the actor's own process holds it when E == 1, else E env processes
        vec_env = DummyVecEnv if self.num_envs == 1 else SubprocVecEnv
        self.venv = vec_env(env_fns, seed=seed + first_env, names=names)
        self._build_policy(policy)
        self.rngs = a2c.action_rngs(seed, range(first_env, first_env + self.num_envs))   # states set per call
        self.obs = self.venv.reset()                              # [E, 96, 96, 4] uint8
        self.dones = np.zeros(self.num_envs, dtype=bool)          # [E]

    def _build_policy(self, policy=None) -> None:
        """The policy (A2CPolicy by default) in a graph and session of its own, on one CPU thread, and the
        placeholders and op that load the learner's weights into it."""
        import tensorflow.compat.v1 as tf

        import model as a2c
        if policy is None:
            from architecture import A2CPolicy as policy
        self.graph = tf.Graph()
        config = a2c.session_config(threads=1)
        config.device_count["GPU"] = 0   # workers stay on the CPU; a GPU of the machine is the learner's
        with self.graph.as_default():
            self.sess = tf.Session(graph=self.graph, config=config)
            self.policy = policy(self.sess, self.venv.observation_space, self.venv.action_space, self.num_envs, 1)
            self.params = tf.trainable_variables("model")
            self.weights_ = [tf.placeholder(p.dtype.base_dtype, p.shape, name=f"load/{i}")
                             for i, p in enumerate(self.params)]
            self.load_op = tf.group(*[tf.assign(p, w) for p, w in zip(self.params, self.weights_)])
            self.sess.run(tf.global_variables_initializer())
        self.graph.finalize()

    def ready(self) -> dict:
        """Where this worker runs: {'pid', 'node_id', 'host'} (answers once the constructor has finished)."""
        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(), "host": node_name()}

    def spaces(self) -> tuple:
        return self.venv.observation_space, self.venv.action_space

    def param_specs(self) -> list:
        """[(name, shape)] of the policy's weights, in the order rollout() takes them."""
        return [(p.op.name, p.shape.as_list()) for p in self.params]

    def rollout(self, weights, rng_states, settings: Collection) -> tuple:
        """Collect settings.nsteps from every env with these weights.
        weights: arrays in model.params order, or Shipped(ref) of them; rng_states [E]: bit-generator states of
        the envs' action-noise generators. -> (Rollout over the E envs, their new rng states [E], report:
        {'fetch_s': weights fetched and loaded, 'collect_s', 'rollout_bytes', 'episode_keys': (step, env index)
        of each of the rollout's episodes})."""
        import model as a2c
        start = time.perf_counter()
        if isinstance(weights, Shipped):
            weights = ray.get(weights.ref)
        self.sess.run(self.load_op, dict(zip(self.weights_, weights)))
        loaded = time.perf_counter()
        for rng, state in zip(self.rngs, rng_states, strict=True):
            rng.bit_generator.state = state
        self.steps = 0
        venv = EpisodeOrder(self.venv, self.first_env)
        rollout, self.obs, self.dones = a2c.collect(venv, self.policy, self.obs, self.dones, self.rngs, settings,
                                                   on_step=self._count_step)
        self.steps = 0   # until the next rollout starts, progress() must not report this one's count for it
        report = {"fetch_s": loaded - start, "collect_s": time.perf_counter() - loaded,
                  "rollout_bytes": rollout_bytes(rollout), "episode_keys": venv.keys}
        return rollout, [rng.bit_generator.state for rng in self.rngs], report

    def _count_step(self, vector_steps: int) -> None:
        self.steps += vector_steps

    # answered by a thread of their own ("poll" group), also while a rollout runs
    @ray.method(concurrency_group="poll")
    def progress(self) -> int:
        """Vector steps collected so far by the rollout in progress (0 between rollouts)."""
        return self.steps

    @ray.method(concurrency_group="poll")
    def memory(self) -> int:
        """PSS of this actor's process and its env processes, bytes."""
        return process_memory()

    def close(self) -> None:
        """Stop the env processes (the actor itself is ended by RaySampler.close)."""
        self.venv.close()
        self.sess.close()


# ----------------------------------------------------------------------------- connecting to Ray

def check_address(address: str, timeout: float = 3.0) -> str:
    """'auto' or 'host:port' of a running Ray cluster -> 'host:port'. Raises ConfigError within about
    timeout + 2 x PROBE_TIMEOUT_S when no cluster answers there (ray.init itself would retry for minutes), or
    when the cluster wants a token that this machine does not have or that it refuses (see ask_head)."""
    return reach(address, timeout)[0]


def reach(address: str, timeout: float = 3.0) -> tuple:
    """check_address's work. -> ('host:port', the RAY_AUTH_MODE to join the cluster with: None to leave it as
    it is here, or 'token')."""
    from ray._private.services import canonicalize_bootstrap_address_or_die
    hint = ("start one with `ray start --head` on the learner machine, or use --ray-address '' to start Ray on "
            "this machine only")
    try:
        resolved = canonicalize_bootstrap_address_or_die(address)
    except (ConnectionError, ValueError) as error:
        raise ConfigError(f"--ray-address {address!r}: no running Ray cluster found ({error_line(error)}): "
                          f"{hint}") from None
    host, _, port = resolved.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} is not HOST:PORT (for example 10.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigError(f"--ray-address {address!r}: no Ray cluster answers at {resolved} ({error_line(error)}): "
                          f"{hint}") from None
    mode, failed = ask_head(resolved)
    if failed and "AuthenticationError" in failed:
        raise ConfigError(f"--ray-address {address!r}: {token_problem(resolved, mode, token_source())}")
    if failed:
        raise ConfigError(f"--ray-address {address!r}: something listens at {resolved} but no Ray cluster answers "
                          f"there ({failed}): give the head's address and port (6379 by default), or {hint}")
    return resolved, mode


def probe(resolved: str, mode=None):
    """Ask the Ray head at `resolved` for a key, in a process of its own (a Ray client cannot be stopped from
    retrying in this one), with RAY_AUTH_MODE `mode` (None: unset). -> None when it answered, else the last
    line of what went wrong."""
    code = ("import sys, ray\n"
            "ray._raylet.GcsClient(address=sys.argv[1]).internal_kv_get(b'session_name', namespace=None, timeout=5)")
    env = dict(os.environ, RAY_py_gcs_connect_timeout_s="3", RAY_gcs_rpc_server_connect_timeout_s="1")
    if mode:
        env["RAY_AUTH_MODE"] = mode
    try:
        result = subprocess.run([sys.executable, "-c", code, resolved], env=env, capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"no answer within {PROBE_TIMEOUT_S} s"
    if result.returncode == 0:
        return None
    return (result.stderr.strip().splitlines() or ["no answer"])[-1]


def error_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def worker_env_vars(code_paths=()) -> dict:
    """Environment of the worker processes: the project (and `code_paths`, e.g. the tests' fake envs) on
    PYTHONPATH (each machine must hold the project at the same path), TensorFlow quiet and off any GPU, and
    the normal priority: Ray runs its workers at nice 15 (RAY_worker_niceness), and their env processes would
    inherit it, which on a busy machine cost this backend 15% of its sampling rate in the benchmark."""
    paths = [PROJECT_DIR, *[os.path.abspath(p) for p in code_paths]]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(paths), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
            "RAY_worker_niceness": "0"}


def connect(address: str, num_cpus=None, code_paths=(), verbose: bool = False) -> bool:
    """Start Ray on this machine (address '') or join the cluster at `address` ('auto', 'host:port').
    -> True when this call started a Ray instance (then it is the caller's to shut down). A process already
    connected to Ray (ray.init called before) keeps that connection."""
    if ray.is_initialized():
        return False
    import logging
    options = {"runtime_env": {"env_vars": worker_env_vars(code_paths)}, "log_to_driver": verbose,
               "logging_level": logging.INFO if verbose else logging.ERROR}
    if address == "":
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **options)
        return True
    resolved, mode = reach(address)
    use_auth_mode(mode)
    ray.init(address=resolved, **options)
    return False


# ----------------------------------------------------------------------------- the cluster's token

TOKEN_FILE = "~/.ray/auth_token"   # where `ray start --head` and `ray get-auth-token --generate` keep the token
TOKEN_HELP = (f"copy the head's {TOKEN_FILE} to this machine's {TOKEN_FILE}, or set RAY_AUTH_TOKEN to the token "
              "(`ray get-auth-token` on the head prints it) or RAY_AUTH_TOKEN_PATH to a file holding it")


def token_source():
    """Where Ray will read the cluster token from on this machine, in Ray's own order: RAY_AUTH_TOKEN, the file
    RAY_AUTH_TOKEN_PATH names, ~/.ray/auth_token. -> 'RAY_AUTH_TOKEN' or the file's path (followed by
    '(RAY_AUTH_TOKEN_PATH)' when that names it), or None when there is no token.
    ConfigError when RAY_AUTH_TOKEN_PATH names no token: Ray would abort the process on it."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH", "")
    if path:
        if not read_token(path):
            raise ConfigError(f"RAY_AUTH_TOKEN_PATH is {path!r}, which holds no token (missing, unreadable or "
                              f"empty): point it at a copy of the head's {TOKEN_FILE}, or unset it")
        return f"{path} (RAY_AUTH_TOKEN_PATH)"
    if read_token(os.path.expanduser(TOKEN_FILE)):
        return os.path.expanduser(TOKEN_FILE)
    return None


def read_token(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def ask_head(resolved: str) -> tuple:
    """Probe the head at `resolved` in this process's RAY_AUTH_MODE, and when that is unset, the head wants a
    token and this machine has one, again in token mode. -> (the RAY_AUTH_MODE of the last probe, None or what
    it says went wrong). ConfigError when RAY_AUTH_MODE is 'token' and there is no token (Ray would abort).

    A head started by `ray start --head` where a token exists wants it, but Ray turns token mode on by itself
    only for `ray start --head` and ray.init('auto'), not for a HOST:PORT (nor `ray start --address`, `ray
    status`). Not token mode whenever a token is here: a driver in token mode wants the token from the workers
    that call it back, and the workers of a cluster without tokens send none (its actors never start)."""
    mode, token_from = os.environ.get("RAY_AUTH_MODE") or None, token_source()
    if mode == "token" and not token_from:
        raise ConfigError(f"RAY_AUTH_MODE is 'token' but this machine has no Ray token: {TOKEN_HELP}")
    failed = probe(resolved, mode)
    if failed and "AuthenticationError" in failed and mode is None and token_from:
        mode = "token"
        failed = probe(resolved, mode)
    return mode, failed


def token_problem(resolved: str, mode, token_from) -> str:
    """The one line for a head at `resolved` that refused this machine's token, or the lack of one."""
    if not token_from:
        return f"the Ray cluster at {resolved} wants a token and this machine has none: {TOKEN_HELP}"
    if mode != "token":
        return (f"the Ray cluster at {resolved} wants a token, and RAY_AUTH_MODE is {mode!r} here: unset it (the "
                f"token is in {token_from})")
    if token_from == "RAY_AUTH_TOKEN":
        fix = "set it to the head's token (`ray get-auth-token` on the head prints it), or unset it"
    else:
        fix = (f"replace that file with a copy of the head's {TOKEN_FILE}, or set RAY_AUTH_TOKEN to the head's "
               "token (`ray get-auth-token` on the head prints it)")
    return f"the Ray cluster at {resolved} refused the token in {token_from}: {fix}"


def use_auth_mode(mode) -> None:
    """Make this process join Ray in `mode` (None: leave it as it is). The workers on a machine get theirs from
    the `ray start` that started it, so the token stays out of the job's runtime_env, which the cluster keeps
    in the clear."""
    if mode and os.environ.get("RAY_AUTH_MODE") != mode:
        from ray._raylet import Config
        os.environ["RAY_AUTH_MODE"] = mode
        Config.initialize("")   # Ray reads RAY_AUTH_MODE when it is imported; this makes it read it again


def check_cpus(num_workers: int, cpus=None, nodes=None) -> None:
    """Raise ConfigError when the cluster (default: the one connected to) has fewer CPUs than workers (each
    takes one)."""
    if cpus is None:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if num_workers > cpus:
        raise ConfigError(f"--num-workers {num_workers} needs {num_workers} CPUs (one per worker), but the Ray "
                          f"cluster has {cpus} CPU{'s' if cpus != 1 else ''} on {nodes} machine"
                          f"{'s' if nodes != 1 else ''}: use --num-workers {cpus} or fewer (with more "
                          "--envs-per-worker), or add machines with `RAY_AUTH_MODE=token ray start "
                          "--address=HEAD:6379` (README, section 'Training on a cluster')")


def user_error(error: RayActorError):
    """The GameError or ConfigError a worker's constructor raised, rebuilt from Ray's report of it (which keeps
    only its text) so that the user gets its one line; None when it raised something else."""
    kind, _, message = error_line(error).partition(": ")
    for error_class in (GameError, ConfigError):
        if kind.rsplit(".", 1)[-1] == error_class.__name__:
            return error_class(message)
    return None


# ----------------------------------------------------------------------------- the sampler (on the learner)

class RaySampler(RemoteEnvs):
    """W RolloutWorker actors of E envs each, on a Ray cluster; what `learn` and `train` take in place of a vector
    env (its `sampler` is what the learner, model.Learner, collects with).

    env_fns: W x E picklable env factories (env.env_fns), worker w gets envs w*E .. w*E+E-1; seed: the run's
    seed; address: '' starts Ray on this machine (stopped again by close()), 'auto' or 'host:port' joins a
    running cluster (left running); names: env names for messages; game: checked for its ROM on every worker's
    machine; num_cpus: CPUs of a Ray started here (default: this machine's); code_paths: more folders the
    workers import from (the project's own is always there); hang_timeout: seconds a worker may collect no
    step before it counts as hung and is restarted; max_failures: losses of one worker in a row that stop the
    run; ready_timeout: seconds a (re)started worker may take to be ready.

    Attributes: num_envs, observation_space, action_space, restarts (workers lost and restarted), workers
    (the actor handles), last_update (what the last sample() moved and how long it took; see RayRunner.sample).
    """

    def __init__(self, env_fns, num_workers: int, envs_per_worker: int, seed: int = 0, address: str = "", *,
                 names=None, game=None, policy=None, num_cpus=None, code_paths=(), verbose: bool = False,
                 max_failures: int = MAX_FAILURES, ready_timeout: float = READY_TIMEOUT_S,
                 hang_timeout: float = HANG_TIMEOUT_S):
        env_fns = list(env_fns)
        if num_workers < 1 or envs_per_worker < 1:
            raise ConfigError(f"--num-workers and --envs-per-worker must be at least 1, got {num_workers} and "
                              f"{envs_per_worker}")
        if len(env_fns) != num_workers * envs_per_worker:
            raise ConfigError(f"{len(env_fns)} env factories for {num_workers} workers x {envs_per_worker} envs: "
                              f"give num_workers * envs_per_worker = {num_workers * envs_per_worker}")
        self.num_workers, self.envs_per_worker = num_workers, envs_per_worker
        self.num_envs = num_workers * envs_per_worker
        self.names = list(names) if names else [f"env {i}" for i in range(self.num_envs)]
        self.seed, self.game, self.policy = seed, game, policy
        self.max_failures, self.ready_timeout, self.hang_timeout = max_failures, ready_timeout, hang_timeout
        self.restarts = 0
        self.last_update = {}
        self.workers, self.hosts, self.pids = [], {}, {}   # actor handles; 'host (ip)' and pid per worker
        self._failures = [0] * num_workers
        self._env_fns = env_fns
        self.owns_ray = False
        self.closed = False
        if address == "" and not ray.is_initialized():   # the Ray to start here: refused before it starts
            check_cpus(num_workers, num_cpus or os.cpu_count(), 1)
        try:
            self.owns_ray = connect(address, num_cpus, code_paths, verbose)
            check_cpus(num_workers)
            self._start_workers()
        except BaseException:
            self.close()
            raise

    def _start_workers(self) -> None:
        """Create the actors (one Ray CPU each, spread over the machines) and wait until each is ready."""
        self._actor_class = ray.remote(
            num_cpus=1, max_restarts=-1, max_task_retries=0,   # restarted when lost; what to redo is ours to say
            scheduling_strategy="SPREAD", concurrency_groups={"poll": 1})(RolloutWorker)
        self.workers = [self._create(w) for w in range(self.num_workers)]
        for w in range(self.num_workers):
            self._wait_ready(w)
        self.observation_space, self.action_space = ray.get(self.workers[0].spaces.remote())

    # -- workers
    def envs_of(self, w: int) -> range:
        """The env indices worker w holds."""
        return range(w * self.envs_per_worker, (w + 1) * self.envs_per_worker)

    def describe(self, w: int) -> str:
        envs = self.envs_of(w)
        host = self.hosts.get(w)
        return f"Ray worker {w} (envs {envs[0]}-{envs[-1]}{', on ' + host if host else ''})"

    def _create(self, w: int):
        envs = self.envs_of(w)
        return self._actor_class.remote([self._env_fns[i] for i in envs], envs[0], self.seed,
                                        [self.names[i] for i in envs], self.game, self.policy)

    def _wait_ready(self, w: int, old_pid=None) -> None:
        """Wait until worker w has finished its constructor (after a start, or a restart: in a process other
        than `old_pid`), up to ready_timeout. A constructor that raised: its GameError / ConfigError, else
        WorkerError naming the worker."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                info = ray.get(self.workers[w].ready.remote(), timeout=max(1.0, deadline - time.monotonic()))
                if info["pid"] == old_pid and time.monotonic() < deadline:   # the killed one, still answering
                    time.sleep(0.5)
                    continue
                self.hosts[w], self.pids[w] = info["host"], info["pid"]
                return
            except ActorUnavailableError:   # restarting: Ray brings it back (new process, maybe another node)
                if time.monotonic() > deadline:
                    raise WorkerError(self.envs_of(w)[0], self.describe(w),
                                      f"not back within {self.ready_timeout:g} s") from None
                time.sleep(0.5)
            except ActorDiedError as error:
                raise self._death(w, error) from None
            except GetTimeoutError:
                raise WorkerError(self.envs_of(w)[0], self.describe(w),
                                  f"not ready within {self.ready_timeout:g} s (does the cluster have a free CPU "
                                  "for it?)") from None

    def _death(self, w: int, error: ActorDiedError) -> Exception:
        """What to raise for worker w, dead for good: the GameError / ConfigError its constructor raised (a
        missing ROM), else a WorkerError naming the worker."""
        if error.actor_init_failed and user_error(error):
            return user_error(error)
        cause = "could not start" if error.actor_init_failed else "died"
        return WorkerError(self.envs_of(w)[0], self.describe(w), f"{cause}: {error_line(error)}")

    def recover(self, w: int, error: BaseException) -> None:
        """Worker w's rollout was lost (`error`: its process or node died, or, in a live actor, its envs failed
        or hung): count a restart, restart the actor if it still lives, and wait until Ray has brought it back
        with fresh envs, so that the caller can collect its rollout again. A worker lost max_failures times in a
        row stops the run (WorkerError)."""
        self.restarts += 1
        self._failures[w] += 1
        if self._failures[w] >= self.max_failures:
            raise WorkerError(self.envs_of(w)[0], self.describe(w),
                              f"lost {self._failures[w]} times in a row, last: {error_line(error)}") from None
        old_pid = None
        if not isinstance(error, LOST):   # the actor lives on: Ray restarts it when we kill it
            old_pid = self.pids.get(w)
            ray.kill(self.workers[w], no_restart=False)
        self._wait_ready(w, old_pid)

    def delivered(self, w: int) -> None:
        """Worker w returned a rollout: its run of failures is over."""
        self._failures[w] = 0

    def sampler(self, model, rngs, settings: Collection) -> "RayRunner":
        """The learner's sampler (rollout.RemoteEnvs): RayRunner.sample -> the Rollout of every worker's envs.
        model: the learner's Model (its weights are sent); rngs: the num_envs action-noise generators."""
        return RayRunner(self, model, rngs, settings)

    def memory(self) -> list:
        """[W] PSS bytes of each worker: its actor process and env processes (None for one that did not answer)."""
        refs = [worker.memory.remote() for worker in self.workers]
        answered, _ = ray.wait(refs, num_returns=len(refs), timeout=10)
        out = []
        for ref in refs:
            try:
                out.append(ray.get(ref) if ref in answered else None)
            except RayActorError:
                out.append(None)
        return out

    def close(self) -> None:
        """Stop every worker (its env processes first), and the Ray instance when this sampler started it.
        Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if self.workers:
            try:
                ray.wait([worker.close.remote() for worker in self.workers], num_returns=len(self.workers),
                         timeout=10)
            except Exception:   # a worker already gone: killed below all the same
                pass
            for worker in self.workers:
                ray.kill(worker, no_restart=True)
            self.workers = []
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RayRunner(Sampler):
    """model.Runner's counterpart: each sample() is one synchronous update's worth of rollouts from every worker."""

    def __init__(self, sampler: RaySampler, model, rngs, settings: Collection):
        if len(rngs) != sampler.num_envs:
            raise ValueError(f"{len(rngs)} action-noise generators for {sampler.num_envs} envs")
        self.sampler, self.model, self.rngs, self.settings = sampler, model, rngs, settings
        self.last_transfer = {}  # what the last sample() moved and how long it took (see sample)
        check_params(model, ray.get(sampler.workers[0].param_specs.remote()))

    def sample(self, on_step=None, stop=None):
        """-> the Rollout over all W x E envs (rollout.Sampler), or None once stop.requested turned true.
        on_step(n) as the slowest worker collects n more vector steps, the first step on its own. Sets
        last_transfer (and sampler.last_update): weights_bytes / weights_put_s (the one object put in Ray's
        store; the time to read and put it), weights_fetch_s (slowest worker: fetched and loaded), rollout_bytes
        / rollout_get_s (all the rollouts and the learner's time to get them once ready), collect_s_min /
        collect_s_max (workers' collecting), sample_s (the whole sample()), nodes (machines that hold workers)."""
        started = time.perf_counter()
        weights = self.model.sess.run(self.model.params)   # [arrays] in model.params order, read once
        weights_ref = ray.put(weights)                     # one object for every worker
        put_s = time.perf_counter() - started
        gathered = self._gather(weights_ref, on_step or (lambda vector_steps: None), stop)
        if gathered is None:
            return None
        (parts, states, reports), get_s = gathered
        rollout = Rollout.concat(list(parts))
        rollout.episodes = in_step_order(parts, reports)
        for rng, state in zip(self.rngs, [s for worker_states in states for s in worker_states], strict=True):
            rng.bit_generator.state = state   # the learner's generators go on where the workers left them
        self.last_transfer = self.sampler.last_update = {
            "weights_bytes": int(sum(w.nbytes for w in weights)), "weights_put_s": put_s,
            "weights_fetch_s": max(r["fetch_s"] for r in reports),
            "rollout_bytes": int(sum(r["rollout_bytes"] for r in reports)), "rollout_get_s": get_s,
            "collect_s_min": min(r["collect_s"] for r in reports),
            "collect_s_max": max(r["collect_s"] for r in reports),
            "sample_s": time.perf_counter() - started, "nodes": len(set(self.sampler.hosts.values())),
            "restarts": self.sampler.restarts}
        return rollout

    def _gather(self, weights_ref, on_step, stop):
        """Every worker's rollout with these weights; a lost or hung worker's collected again once it is back.
        -> ((parts [W], rng states [W], reports [W]), seconds spent in ray.get), or None once stop.requested
        (looked at every POLL_S, as the slowest worker's step count is reported to on_step)."""
        sampler = self.sampler
        pending = {self._submit(w, weights_ref): w for w in range(sampler.num_workers)}
        watch = Watch(pending.values(), sampler.hang_timeout)
        nsteps = self.settings.nsteps
        results, get_s, reported = [None] * sampler.num_workers, 0.0, 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            for ref in ready:
                w = pending.pop(ref)
                get_started = time.perf_counter()
                try:
                    results[w] = ray.get(ref)
                    get_s += time.perf_counter() - get_started
                    sampler.delivered(w)
                    watch.finished(w, nsteps)
                except LOST + (RayTaskError,) as error:
                    if isinstance(error, RayTaskError) and not isinstance(error.cause, WorkerError):
                        raise   # a bug, not a lost worker: its traceback says where
                    self._redo(w, error, pending, watch, weights_ref)
            watch.update(self._progress(pending))
            for ref, w in [(ref, w) for ref, w in pending.items() if watch.hung(w)]:
                del pending[ref]
                self._redo(w, TimeoutError(f"no step collected for {sampler.hang_timeout:g} s (hung)"), pending,
                           watch, weights_ref)
            # the first step alone at first: the time estimate starts from it, and steps reported in one burst
            # with it would look as if they took no time
            slowest = watch.slowest(nsteps)
            reported = report_steps(on_step, reported, slowest if reported else min(slowest, 1))
            if stop is not None and stop.requested:
                return None
        report_steps(on_step, reported, nsteps)
        return None if stop is not None and stop.requested else (tuple(zip(*results)), get_s)

    def _redo(self, w: int, error, pending: dict, watch: "Watch", weights_ref) -> None:
        """Worker w's rollout was lost (`error`): bring the worker back and ask it again."""
        self.sampler.recover(w, error)
        pending[self._submit(w, weights_ref)] = w
        watch.restart(w)

    def _submit(self, w: int, weights_ref):
        envs = self.sampler.envs_of(w)
        states = [self.rngs[i].bit_generator.state for i in envs]
        return self.sampler.workers[w].rollout.remote(Shipped(weights_ref), states, self.settings)

    def _progress(self, pending: dict) -> dict:
        """{worker: vector steps collected so far} of the pending workers that answered within 5 s."""
        asked = {self.sampler.workers[w].progress.remote(): w for w in pending.values()}
        answered, _ = ray.wait(list(asked), num_returns=len(asked), timeout=5)
        counts = {}
        for ref in answered:
            try:
                counts[asked[ref]] = ray.get(ref)
            except RayActorError:   # restarting: no news this time
                pass
        return counts



def report_steps(on_step, reported: int, steps: int) -> int:
    """Tell on_step the vector steps from `reported` up to `steps` (none when it is not ahead). -> the new count."""
    if steps > reported:
        on_step(steps - reported)
    return max(reported, steps)


class Watch:
    """The step counts of the workers whose rollout is pending, and when each last moved: a worker whose count
    has not moved for `timeout` s is hung (a worker that is fetching weights or restarting counts as 0)."""

    def __init__(self, workers, timeout: float, clock=time.monotonic):
        self.timeout, self.clock = timeout, clock
        self.counts, self.moved = {}, {}
        for w in workers:
            self.restart(w)

    def restart(self, w: int) -> None:
        self.counts[w], self.moved[w] = 0, self.clock()

    def update(self, counts: dict) -> None:
        """counts: {worker: steps} of the workers that answered; a worker missing from it keeps its count."""
        for w, count in counts.items():
            if count != self.counts.get(w):
                self.counts[w], self.moved[w] = count, self.clock()

    def finished(self, w: int, nsteps: int) -> None:
        self.counts[w] = nsteps

    def hung(self, w: int) -> bool:
        return self.clock() - self.moved[w] > self.timeout

    def slowest(self, nsteps: int) -> int:
        """Vector steps that every worker has collected."""
        return min(self.counts.values(), default=nsteps)


def in_step_order(parts, reports) -> list:
    """The episodes of the workers' rollouts ordered as the local Runner lists them: by step, then env index."""
    keyed = [(key, episode) for part, report in zip(parts, reports)
             for key, episode in zip(report["episode_keys"], part.episodes, strict=True)]
    return [episode for _, episode in sorted(keyed, key=lambda pair: pair[0])]


def check_params(model, specs) -> None:
    """Raise ValueError unless the workers' policy has the learner's weights, in the same order and shapes.
    specs: [(name, shape)] from RolloutWorker.param_specs."""
    mine = [(p.op.name, p.shape.as_list()) for p in model.params]
    if mine != [(name, list(shape)) for name, shape in specs]:
        raise ValueError(f"the workers' policy does not match the learner's model: {specs} vs {mine}; build both "
                         "from the same policy class")
