"""Where the time and memory of training go, on the embedded default game (no ROM needed).

Examples:
    python bench/throughput.py                       # the 'matched' and 'seed' configurations, 3 repetitions
    python bench/throughput.py --configs matched --reps 3 --json bench.json
    python bench/throughput.py --configs tiny --reps 1 --updates 1 --json out.json    # a quick check

For each configuration it prints min / median / max over the repetitions of:
  limit        agent steps/s of one env of the whole wrapper chain stepped in this process (no IPC, random
               actions) times the cores this process may run on: what the emulators could do with nothing else
  ceiling      agent steps/s of the project's vector env (full wrapper chain) with random actions
  learn        agent steps/s of learn() over K updates after a warm-up update, and the split of each update
               into sampling (env stepping + policy inference), training (the minibatch epochs) and the rest
  train_op     samples/s of one optimizer step (the default optimizer and objective) at the run's minibatch
               size, alone
With --compare-2018 the learn and train_op figures are also taken with every 2018 setting (TF1 RMSProp), each
repetition measuring both in turn, and the ratios defaults / 2018 are printed.
  peak memory  the sum of PSS (RSS where PSS is unavailable) over the learner and its env workers, during learn
plus the ratios the targets are stated in: sampling / ceiling, training / train_op, learn / ceiling, and each
of ceiling, sampling, training (as agent steps/s: samples/s over the epochs) and learn as a fraction of the
limit (the `of_limit_*` lines).

With --backend ray it measures the sampling of each configuration side by side, in one run and against one
model: the local Runner over num_envs env processes, and Ray's rollout workers (--num-workers of
num_envs / num-workers envs each, on a Ray started here), one update of each in turn (--reps pairs after a
warm-up of each, so both see the same machine). It prints their steps/s and the ratio ray / local, the bytes
and seconds an update spends shipping the weights and the rollouts, and the peak PSS of each worker (its actor
process and its env processes) beside that of the local env processes:
    python bench/throughput.py --backend ray --configs matched --num-workers 2 --reps 3 --json ray.json

With --double-buffer it measures the sampling phase of the local Runner with the envs stepped in turn and
double-buffered, side by side (--reps pairs after a warm-up pair); --tf-threads sets the policy's threads and
`taskset` the cores:
    taskset -c 0,1 python bench/throughput.py --double-buffer --configs matched --reps 3 --tf-threads 1
"""
import abc
import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import env as envs  # noqa: E402
from cli import HelpFormatter, examples_epilog  # noqa: E402
from config import TrainConfig, as_2018  # noqa: E402

CONFIGS = {   # name -> (num_envs, nsteps, noptepochs, nminibatches)
    "seed": (13, 2048, 4, 8),
    "matched": (8, 512, 4, 8),
    "tiny": (2, 64, 2, 4),
    # the project's defaults on the default game (with --compare-2018: against the 2018 settings at 8 x 512)
    "defaults": (8, 512, TrainConfig.noptepochs, TrainConfig.nminibatches),
}


def make_vec_env(num_envs: int, seed: int):
    game = envs.resolve_game("auto")
    return envs.SubprocVecEnv(envs.env_fns(num_envs, game), seed=seed, names=envs.env_names(num_envs, game))


def measure_ceiling(num_envs: int, steps: int, seed: int) -> float:
    """Agent steps/s of the vector env with uniformly random actions, after a short warm-up."""
    venv = make_vec_env(num_envs, seed)
    try:
        rng = np.random.default_rng(seed)
        venv.reset()
        for _ in range(20):
            venv.step(rng.integers(0, venv.action_space.n, num_envs))
        start = time.perf_counter()
        for _ in range(steps):
            venv.step(rng.integers(0, venv.action_space.n, num_envs))
        return steps * num_envs / (time.perf_counter() - start)
    finally:
        venv.close()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def measure_limit(steps: int, seed: int) -> float:
    """Agent steps/s of one env of the whole wrapper chain in this process, random actions, times the usable
    cores. The env is closed before any worker starts (one emulator per process)."""
    game = envs.resolve_game("auto")
    env = envs.make_env(0, game)
    try:
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        for _ in range(20):
            _step_in_process(env, rng)
        start = time.perf_counter()
        for _ in range(steps):
            _step_in_process(env, rng)
        return steps / (time.perf_counter() - start) * usable_cores()
    finally:
        env.close()


def _step_in_process(env, rng) -> None:
    _obs, _reward, terminated, truncated, _info = env.step(rng.integers(0, env.action_space.n))
    if terminated or truncated:
        env.reset()


class Poller(abc.ABC):
    """Calls self.poll() every `interval` s in a thread while the `with` block runs."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @abc.abstractmethod
    def poll(self) -> None:
        """Take one sample (each subclass says of what)."""

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class PeakMemory(Poller):
    """The peak of the summed PSS (RSS where the system has no PSS) of this process and its children, sampled
    every `interval` s."""

    def __init__(self, interval: float = 0.5):
        super().__init__(interval)
        from ray_backend import process_memory
        self.measure = process_memory
        self.peak_bytes = 0
        self.kind = "pss" if hasattr(psutil.Process().memory_full_info(), "pss") else "rss"

    def poll(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self.measure())


def measure_learn(num_envs, nsteps, noptepochs, nminibatches, updates, seed, exact_2018=False) -> dict:
    """learn() (the defaults, or with exact_2018 every 2018 setting but the size) for 1 warm-up + `updates`
    updates; steps/s and the time split over the measured updates."""
    from architecture import A2CPolicy
    from model import learn
    stats = []

    def record(update_stats: dict) -> None:   # an update's full time runs from one callback to the next
        stats.append(dict(update_stats, at=time.perf_counter()))
    venv = make_vec_env(num_envs, seed)
    try:
        with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory:
            config = as_2018(TrainConfig()) if exact_2018 else TrainConfig()
            learn(A2CPolicy, venv, nsteps, num_envs * nsteps * (updates + 1), config.gamma, config.lam,
                  config.vf_coef, config.ent_coef, config.lr, config.max_grad_norm,
                  log_interval=10 ** 9, noptepochs=noptepochs, nminibatches=nminibatches, seed=seed,
                  run_dir=os.path.join(tmp, "run"), runs_dir=tmp, models_dir=os.path.join(tmp, "models"),
                  progress=False, callback=record, stream=open(os.devnull, "w"), exact_2018=exact_2018)
    finally:
        venv.close()
    measured = stats[1:]
    total = stats[-1]["at"] - stats[0]["at"]    # the measured updates, logging and checkpoints included
    sample = sum(s["t_sample"] for s in measured)
    train = sum(s["t_train"] for s in measured)
    samples_per_update = num_envs * nsteps
    trained = sum(s["minibatch_steps"] for s in measured) * (samples_per_update // nminibatches)   # a KL bound may
    return {"steps_per_s": samples_per_update * len(measured) / total,                            # end updates early
            "sampling_steps_per_s": samples_per_update * len(measured) / sample,
            "training_samples_per_s": trained / train,
            "minibatch_steps_per_update": statistics.mean(s["minibatch_steps"] for s in measured),
            "share_sampling": sample / total, "share_training": train / total,
            "share_rest": (total - sample - train) / total,
            "peak_memory_mib": memory.peak_bytes / 2 ** 20, "memory_kind": memory.kind}


def measure_train_op(minibatch: int, steps: int, seed: int, exact_2018: bool = False) -> float:
    """Samples/s of Model.train alone (the default optimizer and objective, or the 2018 ones) on one fixed random
    minibatch (uint8 frames fed as in learn)."""
    import gymnasium as gym
    import tensorflow.compat.v1 as tf
    from architecture import A2CPolicy
    from model import Model, model_options, session_config
    rng = np.random.default_rng(seed)
    ob_space = gym.spaces.Box(0, 255, (96, 96, 4), np.uint8)
    obs = rng.integers(0, 256, (minibatch, 96, 96, 4), dtype=np.uint8)
    actions = rng.integers(0, 7, minibatch).astype(np.int32)
    returns, values = rng.random(minibatch, dtype=np.float32), rng.random(minibatch, dtype=np.float32)
    neglogpacs = np.full(minibatch, np.log(7.0), np.float32)   # as drawn by a uniform policy
    config = as_2018(TrainConfig()) if exact_2018 else TrainConfig()
    with tf.Graph().as_default(), tf.Session(config=session_config()) as sess, sess.as_default():
        model = Model(A2CPolicy, ob_space, gym.spaces.Discrete(7), 1, minibatch, config.ent_coef, config.vf_coef,
                      config.max_grad_norm, **model_options(config))
        model.train(obs, actions, returns, values, 2e-4, neglogpacs)
        start = time.perf_counter()
        for _ in range(steps):
            model.train(obs, actions, returns, values, 2e-4, neglogpacs)
        return minibatch * steps / (time.perf_counter() - start)


def spread(values) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "values": values}


def machine() -> dict:
    from cli import library_versions
    return {"cores": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(), "versions": library_versions(),
            "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1)}


def run_config(name: str, reps: int, updates: int, ceiling_steps: int, train_steps: int,
               compare_2018: bool = False) -> dict:
    num_envs, nsteps, noptepochs, nminibatches = CONFIGS[name]
    minibatch = num_envs * nsteps // nminibatches
    ceilings, learns, train_ops, learns_2018, train_ops_2018, limits = [], [], [], [], [], []
    for rep in range(reps):
        limits.append(measure_limit(ceiling_steps, seed=rep))
        ceilings.append(measure_ceiling(num_envs, ceiling_steps, seed=rep))
        learns.append(measure_learn(num_envs, nsteps, noptepochs, nminibatches, updates, seed=rep))
        train_ops.append(measure_train_op(minibatch, train_steps, seed=rep))
        if compare_2018:   # the same measurements with every 2018 setting, in turn with the defaults
            learns_2018.append(measure_learn(num_envs, nsteps, noptepochs, nminibatches, updates, seed=rep,
                                             exact_2018=True))
            train_ops_2018.append(measure_train_op(minibatch, train_steps, seed=rep, exact_2018=True))
    result = {"settings": {"num_envs": num_envs, "nsteps": nsteps, "noptepochs": noptepochs,
                           "nminibatches": nminibatches, "minibatch": minibatch, "updates_measured": updates},
              "ceiling_steps_per_s": spread(ceilings), "train_op_samples_per_s": spread(train_ops)}
    for key in learns[0]:
        if key != "memory_kind":
            result[f"learn_{key}"] = spread([l[key] for l in learns])
    result["memory_kind"] = learns[0]["memory_kind"]
    # ratios within each repetition, then their spread
    result["ratio_sampling_to_ceiling"] = spread([l["sampling_steps_per_s"] / c for l, c in zip(learns, ceilings)])
    result["ratio_training_to_train_op"] = spread([l["training_samples_per_s"] / t for l, t in zip(learns, train_ops)])
    result["ratio_learn_to_ceiling"] = spread([l["steps_per_s"] / c for l, c in zip(learns, ceilings)])
    result["limit_steps_per_s"] = spread(limits)
    result.update(of_limit(limits, ceilings, learns, noptepochs))
    if compare_2018:
        result["exact_2018_learn_steps_per_s"] = spread([l["steps_per_s"] for l in learns_2018])
        result["exact_2018_train_op_samples_per_s"] = spread(train_ops_2018)
        result["ratio_learn_defaults_to_2018"] = spread([a["steps_per_s"] / b["steps_per_s"]
                                                         for a, b in zip(learns, learns_2018)])
        result["ratio_train_op_defaults_to_2018"] = spread([a / b for a, b in zip(train_ops, train_ops_2018)])
    return result


def of_limit(limits, ceilings, learns, noptepochs) -> dict:
    """Each phase as a fraction of the limit, within each repetition: the ceiling, sampling, training (agent
    steps/s it would sustain: samples/s over the epochs) and end to end."""
    phases = {"ceiling": lambda c, l: c, "sampling": lambda c, l: l["sampling_steps_per_s"],
              "training": lambda c, l: l["training_samples_per_s"] / noptepochs,
              "learn": lambda c, l: l["steps_per_s"]}
    return {f"of_limit_{name}": spread([rate(c, l) / limit for limit, c, l in zip(limits, ceilings, learns)])
            for name, rate in phases.items()}


# ----------------------------------------------------------------------------- --backend ray: side by side

class WorkerMemory(Poller):
    """The peak PSS of each Ray worker (sampler.memory(): actor + env processes), sampled every `interval` s;
    peaks [W] in bytes."""

    def __init__(self, sampler, interval: float = 0.5):
        super().__init__(interval)
        self.sampler = sampler
        self.peaks = [0] * sampler.num_workers

    def poll(self) -> None:
        for worker, pss in enumerate(self.sampler.memory()):
            self.peaks[worker] = max(self.peaks[worker], pss or 0)


def measure_side_by_side(name: str, num_workers: int, pairs: int, seed: int = 0) -> dict:
    """Sampling of configuration `name` through the local Runner and through Ray, alternating updates."""
    import gymnasium as gym
    import tensorflow.compat.v1 as tf
    from architecture import A2CPolicy
    from model import Model, Runner, action_rngs, session_config
    from ray_backend import RaySampler, process_memory
    from rollout import Collection
    num_envs, nsteps, _, _ = CONFIGS[name]
    game = envs.resolve_game("auto")
    venv = make_vec_env(num_envs, seed)
    sampler = None
    try:
        sampler = RaySampler(envs.env_fns(num_envs, game), num_workers, num_envs // num_workers, seed=seed,
                             address="", names=envs.env_names(num_envs, game), game=game)
        with tf.Graph().as_default(), tf.Session(config=session_config()) as sess, sess.as_default():
            model = Model(A2CPolicy, gym.spaces.Box(0, 255, (96, 96, 4), np.uint8), venv.action_space, num_envs,
                          nsteps, 0.01, 0.5, 0.5)
            settings = Collection.of(dataclasses.replace(TrainConfig(), nsteps=nsteps))
            local = Runner(venv, model, settings, action_rngs(seed, range(num_envs)))
            remote = sampler.sampler(model, action_rngs(seed, range(num_envs)), settings)
            for runner in (local, remote):   # warm-up: TensorFlow's first steps, the workers' first weights
                runner.sample()
            times, transfers = {"local": [], "ray": []}, []
            for _ in range(pairs):   # timed without memory polls: reading smaps costs the polled process CPU
                for backend, runner in (("local", local), ("ray", remote)):
                    start = time.perf_counter()
                    runner.sample()
                    times[backend].append(time.perf_counter() - start)
                transfers.append(dict(sampler.last_update))
            with WorkerMemory(sampler) as memory:   # one more Ray update, for the workers' peak memory
                remote.sample()
            local_env_pss = sum(process_memory(p.pid) for p in venv.procs)
    finally:
        if sampler is not None:
            sampler.close()
        venv.close()
    batch = num_envs * nsteps
    result = {"settings": {"num_envs": num_envs, "nsteps": nsteps, "num_workers": num_workers,
                           "envs_per_worker": num_envs // num_workers, "pairs": pairs},
              "local_sampling_steps_per_s": spread([batch / t for t in times["local"]]),
              "ray_sampling_steps_per_s": spread([batch / t for t in times["ray"]]),
              "ratio_ray_to_local": spread([l / r for l, r in zip(times["local"], times["ray"])])}
    for key in ("weights_bytes", "weights_put_s", "weights_fetch_s", "rollout_bytes", "rollout_get_s",
                "collect_s_max", "sample_s"):
        result[f"ray_{key}"] = spread([t[key] for t in transfers])
    result["ray_overhead_s"] = spread([t["sample_s"] - t["collect_s_max"] for t in transfers])
    result["ray_worker_peak_pss_mib"] = spread([peak / 2 ** 20 for peak in memory.peaks])
    result["local_env_processes_pss_mib_per_worker_share"] = local_env_pss / 2 ** 20 / num_workers
    return result


def print_spreads(result: dict, width: int, digits: int, out=sys.stdout) -> None:
    """One line per figure of `result` that is a spread: its min, median and max."""
    for key, value in result.items():
        if isinstance(value, dict) and "median" in value:
            print(f"  {key:<34} " + "  ".join(f"{part} {value[part]:>{width}.{digits}f}" for part in ("min", "median", "max")),
                  file=out)


def measure_double_buffer(name: str, pairs: int, tf_threads: int, seed: int = 0) -> dict:
    """The sampling phase of configuration `name` (the local Runner, the defaults' collection settings) with the
    envs stepped in turn and double-buffered (two halves, one half's inference while the other's envs step):
    one update of each in turn, `pairs` times after a warm-up of each, on one model whose session has
    `tf_threads` threads (0: TensorFlow's choice)."""
    import gymnasium as gym
    import tensorflow.compat.v1 as tf
    from architecture import A2CPolicy
    from model import Model, Runner, action_rngs, session_config
    from rollout import Collection
    num_envs, nsteps, _, _ = CONFIGS[name]
    in_turn = Collection.of(dataclasses.replace(TrainConfig(), nsteps=nsteps))
    modes = {"in_turn": in_turn, "double_buffered": dataclasses.replace(in_turn, double_buffer=True)}
    venv = make_vec_env(num_envs, seed)
    times = {mode: [] for mode in modes}
    try:
        with tf.Graph().as_default(), tf.Session(config=session_config(tf_threads)) as sess, sess.as_default():
            model = Model(A2CPolicy, gym.spaces.Box(0, 255, (96, 96, 4), np.uint8), venv.action_space, num_envs,
                          nsteps, 0.01, 0.5, 0.5)
            runner = Runner(venv, model, in_turn, action_rngs(seed, range(num_envs)))
            for repetition in range(pairs + 1):   # the first pair warms up
                for mode, settings in modes.items():
                    runner.settings = settings
                    start = time.perf_counter()
                    runner.sample()
                    if repetition:
                        times[mode].append(time.perf_counter() - start)
    finally:
        venv.close()
    batch = num_envs * nsteps
    return {"settings": {"num_envs": num_envs, "nsteps": nsteps, "tf_threads": tf_threads, "pairs": pairs,
                         "cpus": len(os.sched_getaffinity(0))},
            "in_turn_sampling_steps_per_s": spread([batch / t for t in times["in_turn"]]),
            "double_buffered_sampling_steps_per_s": spread([batch / t for t in times["double_buffered"]]),
            "ratio_double_to_in_turn": spread([a / b for a, b in zip(times["in_turn"], times["double_buffered"])])}


def print_side_by_side(name: str, result: dict, out=sys.stdout) -> None:
    print(f"\n== {name}, sampling side by side: {result['settings']}", file=out)
    print_spreads(result, 12, 4, out)
    print(f"  local env processes, PSS per {result['settings']['envs_per_worker']} envs: "
          f"{result['local_env_processes_pss_mib_per_worker_share']:.0f} MiB (a worker adds its policy copy)", file=out)


def print_result(name: str, result: dict, out=sys.stdout) -> None:
    print(f"\n== {name}: {result['settings']}", file=out)
    print_spreads(result, 10, 3, out)
    print(f"  memory measured as {result['memory_kind'].upper()}", file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter,
                                     epilog=examples_epilog(__doc__))
    parser.add_argument("--configs", help=f"comma-separated, of {', '.join(CONFIGS)} (default: matched,seed; "
                        "with --backend ray: matched)")
    parser.add_argument("--backend", default="local", help="'local': the figures above; 'ray': the sampling of "
                        "the local backend and of Ray's rollout workers side by side")
    parser.add_argument("--num-workers", type=int, default=2, help="with --backend ray: rollout workers (each "
                        "holds num_envs / num_workers envs)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measurement")
    parser.add_argument("--updates", type=int, default=2, help="learn() updates measured after the warm-up one")
    parser.add_argument("--ceiling-steps", type=int, default=300, help="vector-env steps for the ceiling")
    parser.add_argument("--train-steps", type=int, default=20, help="train-op calls timed")
    parser.add_argument("--compare-2018", action="store_true", help="also measure learn() and the train op with "
                        "every 2018 setting (--exact-2018), in turn with the defaults, and print the ratios")
    parser.add_argument("--double-buffer", action="store_true", help="measure instead the sampling phase with the "
                        "envs stepped in turn and double-buffered (agent.py --double-buffer), side by side")
    parser.add_argument("--tf-threads", type=int, default=0, help="with --double-buffer: threads of the policy's "
                        "session (0: TensorFlow's choice)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    return run_command(benchmark, args)


def check_options(args) -> list:
    """Every option checked before anything is measured (the --json file too); returns the configuration names."""
    from errors import ConfigError, check_number
    from outputs import check_output_file
    from config import BACKENDS
    if args.backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.configs is None:
        args.configs = "matched" if args.backend == "ray" else "matched,seed"
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        raise ConfigError(f"unknown configuration {', '.join(unknown) or repr(args.configs)}: choose from "
                          f"{', '.join(CONFIGS)}")
    for option in ("reps", "updates", "ceiling_steps", "train_steps"):
        check_number(f"--{option.replace('_', '-')}", getattr(args, option), minimum=1)
    check_number("--tf-threads", args.tf_threads, minimum=0)
    if args.double_buffer and args.backend != "local":
        raise ConfigError("--double-buffer measures the local Runner: drop --backend ray")
    if args.backend == "ray":
        check_number("--num-workers", args.num_workers, minimum=1)
        for name in names:
            if CONFIGS[name][0] % args.num_workers:
                raise ConfigError(f"--num-workers {args.num_workers} does not divide the {CONFIGS[name][0]} envs of "
                                  f"'{name}': every worker holds as many envs")
    if args.json:
        check_output_file(args.json, "--json", (".json",))
    return names


def benchmark(args) -> int:
    from outputs import replaced_on_success
    names = check_options(args)
    report = {"machine": machine(), "game": envs.resolve_game("auto"), "configs": {}}
    print(f"machine: {json.dumps(report['machine'])}\ngame: {report['game']}")
    report["backend"] = args.backend
    for name in names:
        if args.double_buffer:
            report["configs"][name] = measure_double_buffer(name, args.reps, args.tf_threads)
            print(f"\n== {name}, sampling in turn and double-buffered: {report['configs'][name]['settings']}")
            print_spreads(report["configs"][name], 12, 4)
            continue
        if args.backend == "ray":
            report["configs"][name] = measure_side_by_side(name, args.num_workers, args.reps)
            print_side_by_side(name, report["configs"][name])
            continue
        report["configs"][name] = run_config(name, args.reps, args.updates, args.ceiling_steps, args.train_steps,
                                             args.compare_2018)
        print_result(name, report["configs"][name])
    report["machine"]["load_average_after"] = os.getloadavg()
    if args.json:
        with replaced_on_success(args.json, "--json") as tmp, open(tmp, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
