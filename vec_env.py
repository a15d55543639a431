"""Vector environments, baselines-style: `reset() -> obs`, `step(actions) -> obs, rewards, dones, infos`.

Both classes share one stepping function, so their semantics are identical:
- an env whose episode ends is reset in the same step: the returned observation is the new episode's first,
  and that env's info carries 'final_observation' (the last observation of the ended episode), 'truncated'
  (True when a time limit cut the episode) and, from `env.EpisodeStats`, 'episode' (raw return and length);
- env i is seeded with `seed + i` on its first reset.

`SubprocVecEnv` runs one env per process (stable-retro allows one emulator per process). gymnasium's
AsyncVectorEnv has the same layout but cannot name the level whose worker failed or replace one dead
worker while the others go on; both matter for runs that last days, so the small worker protocol is here.
"""
import multiprocessing as mp
import mmap
import multiprocessing.connection
import multiprocessing.util
import os
import select
import signal
import struct
import threading
import time
import traceback
from multiprocessing import reduction
from multiprocessing.reduction import ForkingPickler

import cloudpickle
import numpy as np

from errors import WorkerError  # noqa: F401  (raised here; vec_env.WorkerError as before)


def step_with_autoreset(env, action) -> tuple:
    """One step of a gymnasium env, reset in the same call when the episode ends: (obs, reward, done, info)."""
    obs, reward, terminated, truncated, info = env.step(action)
    done = bool(terminated or truncated)
    if done:
        info = dict(info, final_observation=obs, truncated=bool(truncated and not terminated))
        obs, _ = env.reset()
    return obs, float(reward), done, info


class DummyVecEnv:
    """All envs in this process, stepped one after another (tests, play, a single emulator)."""

    def __init__(self, env_fns, seed: int = 0, names=None):
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.names = list(names) if names else [f"env {i}" for i in range(self.num_envs)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.seed = seed
        self.restarts = 0
        self._actions = {}   # env index -> its action, sent and not yet stepped
        self._seeded = False

    def reset(self) -> np.ndarray:  # -> [nenvs, *obs_shape]
        # only the first reset is seeded, as in SubprocVecEnv's workers: a later reset continues the streams
        seeds = [None] * self.num_envs if self._seeded else [self.seed + i for i in range(self.num_envs)]
        self._seeded = True
        return np.stack([env.reset(seed=s)[0] for s, env in zip(seeds, self.envs)])

    def step_async(self, actions, envs=None) -> None:  # actions [len(envs)]; envs: indices (default: all)
        self._actions.update(zip(range(self.num_envs) if envs is None else envs, actions, strict=True))

    def step_wait(self, envs=None) -> tuple:  # envs (default: all) step now, with their actions of step_async
        envs = range(self.num_envs) if envs is None else envs
        return _stack_results([step_with_autoreset(self.envs[idx], self._actions.pop(idx)) for idx in envs])

    def step(self, actions) -> tuple:
        self.step_async(actions)
        return self.step_wait()

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stack_results(results) -> tuple:
    """[(obs, reward, done, info)] -> obs [nenvs, ...], rewards [nenvs] float32, dones [nenvs] bool, infos."""
    obs, rewards, dones, infos = zip(*results)
    return np.stack(obs), np.asarray(rewards, np.float32), np.asarray(dones, bool), list(infos)


class PickledByValue:
    """An env factory that reaches a worker process pickled with cloudpickle: lambdas and closures too, which the
    standard pickle refuses ("Can't pickle local object"), as baselines' CloudpickleWrapper did."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        return self.fn()

    def __getstate__(self) -> bytes:
        return cloudpickle.dumps(self.fn)

    def __setstate__(self, data: bytes) -> None:
        self.fn = cloudpickle.loads(data)


def factory_modules(env_fns) -> list:
    """The modules the fork server imports once, so that each worker forks with them loaded: '__main__' and
    the module that defines each factory (a functools.partial's function; a lambda's defining module)."""
    modules = {getattr(getattr(fn, "func", fn), "__module__", None) for fn in env_fns}
    return sorted({"__main__"} | modules - {None})


def recv_by(conn, deadline: float):
    """conn.recv(), read whole by `deadline` (time.monotonic()), else TimeoutError; EOFError when the other end
    closed. Connection.recv bounds nothing: a message over 16 KiB (an observation is 37 KB) is written as a
    header, then a body, and a worker stopped between the two would block recv() for as long as it stays stopped.
    The framing is multiprocessing's own: a 4-byte big-endian length (-1: an 8-byte one follows), the pickle."""
    fd = conn.fileno()

    def read(count: int) -> bytes:
        chunks = []
        while count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, count)   # readable: returns what has arrived, without waiting
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    size, = struct.unpack("!i", read(4))
    if size == -1:
        size, = struct.unpack("!Q", read(8))
    return ForkingPickler.loads(read(size))


def _worker(conn, env_fn, seed: int) -> None:
    """Body of one env process: answers ('ok', payload) or ('error', traceback) to each command. Once the
    learner has sent 'attach' (and the segment's descriptor), observations go into this env's slot of the
    shared segment and the answers carry None in their place."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C and SIGTERM are the learner's to handle: it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finishes its step, saves and closes us (even when the
    #                                                signal went to the whole process group: timeout, systemd)
    env = None
    slot = None   # [*obs_shape] view of this env's slot in the learner's segment, once attached
    try:
        env = env_fn()
        conn.send(("ok", (env.observation_space, env.action_space)))
        while True:
            command, data = conn.recv()
            if command == "step":
                obs, reward, done, info = step_with_autoreset(env, data)
                conn.send(("ok", (_put(slot, obs), reward, done, info)))
            elif command == "reset":
                conn.send(("ok", _put(slot, env.reset(seed=seed)[0])))
                seed = None                        # only the first reset is seeded
            elif command == "attach":
                slot = _attach_slot(conn, *data)
                conn.send(("ok", None))
            elif command == "close":
                break
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass                                       # the learner is gone: exit quietly
    except Exception:
        try:
            conn.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if env is not None:
            env.close()
        conn.close()


def _put(slot, obs):
    """Write obs into the shared slot and return None, or return obs itself when there is no slot."""
    if slot is None:
        return obs
    slot[...] = obs   # a wrong shape raises here and is reported as the env's error
    return None


def _attach_slot(conn, offset: int, length: int, shape: tuple, dtype: str) -> np.ndarray:
    """Map the segment whose descriptor follows on conn; -> the [*shape] view at `offset` bytes."""
    fd = reduction.recv_handle(conn)
    try:
        segment = mmap.mmap(fd, length)
    finally:
        os.close(fd)   # the mapping keeps the memory; it goes when the last process unmaps it
    return np.ndarray(shape, np.dtype(dtype), buffer=segment, offset=offset)


class SharedObs:
    """The learner's buffer of every env's current observation, [nenvs, *shape], in anonymous shared memory
    (memfd_create): it has no name, in /dev/shm or anywhere, so nothing can be left behind however the learner
    ends; the kernel frees it when the last process holding it (learner or worker) has gone. Workers receive
    its descriptor over their pipe (SCM_RIGHTS) and write their env's observation into their slot."""

    def __init__(self, nenvs: int, shape: tuple, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.slot_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.length = max(1, nenvs * self.slot_bytes)
        self.fd = os.memfd_create("sonic-a2c-obs", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.length)
        self.segment = mmap.mmap(self.fd, self.length)
        self.array = np.ndarray((nenvs, *self.shape), self.dtype, buffer=self.segment)   # [nenvs, *shape]

    @staticmethod
    def usable(space) -> bool:
        """Observations of one fixed shape and plain dtype (a Box), on a system with memfd_create."""
        dtype = getattr(space, "dtype", None)
        return (hasattr(os, "memfd_create") and getattr(space, "shape", None) is not None and dtype is not None
                and np.dtype(dtype).kind in "biuf")

    def attach_message(self, idx: int) -> tuple:
        return ("attach", (idx * self.slot_bytes, self.length, self.shape, self.dtype.str))

    def close(self) -> None:
        self.array = None
        self.segment.close()
        os.close(self.fd)


def start_forkserver() -> None:
    """Start multiprocessing's fork server (and resource tracker) ignoring SIGINT and SIGTERM: the server and
    the workers it forks leave those signals to the learner, which finishes its step and closes them. A SIGTERM
    sent to the whole process group (`timeout`, systemd) would otherwise kill the server and orphan its workers.
    An ignored disposition survives exec; the signals are blocked meanwhile, so one that arrives then is not
    lost but reaches the learner's own handler afterwards. (Only the main thread may change dispositions.)"""
    from multiprocessing import forkserver
    signals = (signal.SIGINT, signal.SIGTERM)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    handlers = {}
    try:
        if threading.current_thread() is threading.main_thread():
            handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signals}
        forkserver.ensure_running()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def stop_forkserver(timeout: float = 5.0) -> None:
    """Stop multiprocessing's fork server and reap it (it exits when the pipe that this process holds closes),
    killing it after `timeout` s: a process forked from this one may hold that pipe open too."""
    from multiprocessing import forkserver, util
    server = getattr(forkserver, "_forkserver", None)
    try:
        with server._lock:
            pid, address = server._forkserver_pid, server._forkserver_address
            if pid is None:
                return
            os.close(server._forkserver_alive_fd)
            server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None
            deadline = time.monotonic() + timeout
            while os.waitpid(pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
            if address and not util.is_abstract_socket_namespace(address):
                os.unlink(address)
    except (AttributeError, OSError):   # another Python's internals, or already reaped: it exits by itself
        pass


def stop_helper_processes(resource_tracker: bool = True) -> None:
    """Stop and reap multiprocessing's fork server (and its resource tracker): left to exit on their own when
    this process ends, they would be orphans (zombies until something adopts and reaps them)."""
    stop_forkserver()
    if resource_tracker:   # only at the end of a program: it also unlinks what is still registered with it
        from multiprocessing import resource_tracker as tracker
        try:
            tracker._resource_tracker._stop()
        except Exception:  # not running, or a Python without the private _stop(): it exits by itself
            pass


def _close_all(conns) -> None:
    for conn in conns:
        if conn is not None:
            conn.close()


class SubprocVecEnv:
    """One env per process. A worker that raises, dies or hangs for `timeout` s raises WorkerError naming
    its env, unless `restart` is set: then it is replaced by a fresh process, its env reports done=True
    for that step (with info['worker_restarted'] = the cause) and `restarts` counts it.

    With `shared_obs` (the default, where the observation space is a fixed-shape Box and the system has
    memfd_create) observations travel through a SharedObs segment instead of being pickled through the pipe,
    which then carries only the action and the reward, done and info of each step."""

    _open = 0   # SubprocVecEnvs of this process not closed yet

    def __init__(self, env_fns, seed: int = 0, names=None, restart: bool = False, timeout: float = 60.0,
                 shared_obs: bool = True):
        self.env_fns = list(env_fns)
        self.num_envs = len(self.env_fns)
        self.names = list(names) if names else [f"env {i}" for i in range(self.num_envs)]
        self.seed, self.restart, self.timeout = seed, restart, timeout
        self.restarts = 0
        self.closed = False
        self.ctx = mp.get_context("forkserver")
        # the fork server imports the env factories' modules once; each worker is forked from it with them loaded
        self.ctx.set_forkserver_preload(factory_modules(self.env_fns))
        self.conns = [None] * self.num_envs
        self.procs = [None] * self.num_envs
        self.shared = None   # SharedObs, once the workers have attached it
        SubprocVecEnv._open += 1
        # at interpreter exit multiprocessing SIGTERMs its daemon children and joins them; ours ignore SIGTERM,
        # so an uncaught error or Ctrl-C that left this env open would hang the exit. Closing the pipes first
        # (a finalizer with a priority runs before that) ends each worker at its next read.
        mp.util.Finalize(self, _close_all, args=(self.conns,), exitpriority=10)
        try:
            start_forkserver()
            for idx in range(self.num_envs):
                self._start(idx)
            spaces = [self._receive(idx, "start") for idx in range(self.num_envs)]
            self.observation_space, self.action_space = spaces[0]
            if shared_obs and SharedObs.usable(self.observation_space):
                self.shared = SharedObs(self.num_envs, self.observation_space.shape, self.observation_space.dtype)
                for idx in range(self.num_envs):
                    self._attach(idx)
        except BaseException:
            self.close()
            raise

    # -- processes
    def _start(self, idx: int, seed=None) -> None:
        parent_conn, child_conn = self.ctx.Pipe()
        seed = self.seed + idx if seed is None else seed
        proc = self.ctx.Process(target=_worker, args=(child_conn, PickledByValue(self.env_fns[idx]), seed),
                                name=f"env-{idx}", daemon=True)
        proc.start()
        child_conn.close()
        self.conns[idx], self.procs[idx] = parent_conn, proc

    def _receive(self, idx: int, what: str):
        """The payload of worker idx's answer, or WorkerError naming why there is none."""
        conn, proc = self.conns[idx], self.procs[idx]
        deadline = time.monotonic() + self.timeout
        hung = f"no answer to '{what}' within {self.timeout:g} s (hung)"
        if not mp.connection.wait([conn, proc.sentinel], timeout=self.timeout):
            raise WorkerError(idx, self.names[idx], hung)
        try:
            status, payload = recv_by(conn, deadline)   # the whole message within the same timeout
        except TimeoutError:
            raise WorkerError(idx, self.names[idx], hung) from None
        except (EOFError, OSError):
            proc.join(timeout=1.0)
            raise WorkerError(idx, self.names[idx], f"its process died (exit code {proc.exitcode})") from None
        if status == "error":
            last_line = payload.strip().splitlines()[-1]
            raise WorkerError(idx, self.names[idx], last_line, details=payload)
        return payload

    def _attach(self, idx: int) -> None:
        """Hand worker idx the shared segment's descriptor and wait until it has mapped its slot."""
        self._send(idx, self.shared.attach_message(idx))
        try:
            reduction.send_handle(self.conns[idx], self.shared.fd, self.procs[idx].pid)
        except OSError:
            pass   # the worker is gone; _receive reports it
        self._receive(idx, "attach")

    def _observations(self, received, envs=None) -> np.ndarray:
        """[len(envs), *obs_shape] (default: every env): a copy of their slots of the shared buffer, or the
        received observations stacked."""
        if self.shared is None:
            return np.stack(received)
        return self.shared.array.copy() if envs is None else self.shared.array[np.asarray(envs)]

    def _send(self, idx: int, message) -> None:
        try:
            self.conns[idx].send(message)
        except (BrokenPipeError, OSError):
            pass   # the worker is gone; _receive reports it

    def _replace(self, idx: int) -> np.ndarray:
        """Start a fresh worker for env idx and return its first observation."""
        self._stop(idx)
        self.restarts += 1
        self._start(idx, seed=self.seed + idx + 1_000_003 * self.restarts)
        self._receive(idx, "start")
        if self.shared is not None:
            self._attach(idx)
        self._send(idx, ("reset", None))
        return self._receive(idx, "reset")

    def _stop(self, idx: int) -> None:
        conn, proc = self.conns[idx], self.procs[idx]
        if proc is None:
            return
        if proc.is_alive():
            self._send(idx, ("close", None))
            proc.join(timeout=2.0)
        if proc.is_alive():   # hung: SIGKILL (a worker ignores SIGTERM, which is the learner's to handle)
            proc.kill()
            proc.join()
        conn.close()
        self.conns[idx] = self.procs[idx] = None

    # -- the vector env API
    def reset(self) -> np.ndarray:  # -> [nenvs, *obs_shape]
        for idx in range(self.num_envs):
            self._send(idx, ("reset", None))
        return self._observations([self._receive(idx, "reset") for idx in range(self.num_envs)])

    def step_async(self, actions, envs=None) -> None:
        """actions [len(envs)]: one per env of `envs` (indices; default: every env), sent without waiting."""
        for idx, action in zip(range(self.num_envs) if envs is None else envs, actions, strict=True):
            self._send(idx, ("step", action))

    def step_wait(self, envs=None) -> tuple:
        """The answers of `envs` (default: every env) to their step_async: obs [len(envs), *obs_shape],
        rewards [len(envs)] float32, dones [len(envs)] bool, infos."""
        envs = range(self.num_envs) if envs is None else envs
        results = []
        for idx in envs:
            try:
                results.append(self._receive(idx, "step"))
            except WorkerError as error:
                if not self.restart:
                    raise
                obs = self._replace(idx)
                results.append((obs, 0.0, True, {"worker_restarted": str(error).splitlines()[0]}))
        obs, rewards, dones, infos = zip(*results)
        return (self._observations(obs, envs), np.asarray(rewards, np.float32), np.asarray(dones, bool), list(infos))

    def step(self, actions) -> tuple:
        self.step_async(actions)
        return self.step_wait()

    def close(self) -> None:
        """Stop every worker (politely, then by force); safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for idx in range(self.num_envs):
            self._stop(idx)
        if self.shared is not None:
            self.shared.close()
            self.shared = None
        SubprocVecEnv._open -= 1
        if SubprocVecEnv._open == 0:   # the last vector env of this process: its fork server goes too
            stop_forkserver()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if not getattr(self, "closed", True):
            self.close()
