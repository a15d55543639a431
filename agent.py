"""Train the A2C agent: `python agent.py` (the 2018 settings), `python agent.py --help` for every option.

Examples:
    python agent.py                                    # all levels of env.LEVELS, the seed's hyperparameters
    python agent.py --num-envs 2 --nsteps 128 --total-timesteps 20000    # a small run for a small machine
    python agent.py --resume latest                    # continue the newest run exactly where it stopped
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # keep TensorFlow's start-up chatter out of the output

from config import TrainConfig, add_config_arguments, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train A2C on Sonic the Hedgehog (or the embedded default game).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="PATH|latest",
                        help="continue a run exactly: 'latest', a run folder or a checkpoint folder")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: accept hyperparameters that differ from the run's saved config")
    parser.add_argument("--init-weights", metavar="CHECKPOINT",
                        help="start a new run from these weights (a checkpoint of this project or of the 2018 scripts)")
    parser.add_argument("--tf-threads", type=int, default=0, help="cap TensorFlow's CPU threads (0: TF decides)")
    return parser


def explicit_options(parser: argparse.ArgumentParser, argv) -> set:
    """Names of the options the user actually typed (their values override a resumed run's config)."""
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            kwargs = {"dest": action.dest, "default": argparse.SUPPRESS}
            if isinstance(action, argparse.BooleanOptionalAction):
                kwargs["action"] = argparse.BooleanOptionalAction
            elif action.nargs == 0:
                kwargs["action"] = "store_const"
                kwargs["const"] = action.const
            probe.add_argument(*action.option_strings, **kwargs)
    known, _ = probe.parse_known_args(argv)
    return set(vars(known))


def resumed_config(args, explicit: set):
    """-> (config, checkpoint folder, run folder) for --resume; refuses silently changed hyperparameters."""
    from checkpoint import CheckpointError, load_state, read_pointer
    from config import ConfigError, config_differences
    spec = args.resume
    if spec == "latest":
        target = read_pointer(os.path.join(args.models_dir, "latest"))
        if target is None:
            raise CheckpointError(f"nothing to resume: {args.models_dir}/latest does not exist (no run saved yet)")
        spec = target
    if os.path.isdir(os.path.join(spec, "checkpoints")):
        from checkpoint import RunFolder
        latest = RunFolder(spec).latest()
        if latest is None:
            raise CheckpointError(f"nothing to resume: the run folder {spec!r} holds no checkpoint")
        spec = latest
    if not os.path.isdir(spec):
        raise CheckpointError(f"cannot resume from {args.resume!r}: no such checkpoint folder ({spec}). Give "
                              "'latest', a run folder (runs/NAME) or a checkpoint folder (runs/NAME/checkpoints/N)")
    saved = load_state(spec).get("config")
    if not saved:
        raise CheckpointError(f"{spec!r} holds no run config: start a new run from its weights with --init-weights")
    fields = TrainConfig.__dataclass_fields__
    values = {name: saved[name] for name in fields if name in saved}
    values.update({name: getattr(args, name) for name in explicit if name in fields})
    config = TrainConfig(**values)
    changes = config_differences(saved, config)
    if changes and not args.allow_config_change:
        listed = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in changes)
        raise ConfigError(f"--resume would change the run's settings ({listed}): add --allow-config-change "
                          "if that is deliberate, or drop those options")
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(spec)))
    return config, spec, run_dir


def train(args, explicit: set) -> str:
    import env as envs
    from checkpoint import default_run_dir, ensure_writable, resolve_checkpoint
    from config import ConfigError, validate

    checkpoint_dir = run_dir = None
    if args.resume:
        config, checkpoint_dir, run_dir = resumed_config(args, explicit)
    else:
        config = config_from_args(args)
    game = envs.resolve_game(config.game)
    notice = envs.fallback_notice(config.game, game)
    if notice:
        print(notice, flush=True)
    chosen = [lv.strip() for lv in config.levels.split(",") if lv.strip()]
    levels = chosen or envs.default_levels(game)
    envs.check_levels(game, levels)
    # default: one env per chosen level, else as many as env.LEVELS has (13; the default game repeats its level)
    config.num_envs = config.num_envs or len(chosen or envs.LEVELS)
    validate(config)
    if config.vec_env == "dummy" and config.num_envs > 1:
        raise ConfigError("--vec-env dummy runs every env in this process, and stable-retro allows one emulator "
                          "per process: use --vec-env subproc or --num-envs 1")
    ensure_writable(config.runs_dir, "runs")
    ensure_writable(config.models_dir, "models")
    if args.init_weights:   # a wrong path is reported now, before envs start or a run folder is made
        resolve_checkpoint(args.init_weights, config.models_dir)
    if run_dir is None:
        run_dir = (os.path.join(config.runs_dir, config.run_name) if config.run_name
                   else default_run_dir(config.runs_dir, game))
        if os.path.exists(os.path.join(run_dir, "checkpoints")) and os.listdir(os.path.join(run_dir, "checkpoints")):
            raise ConfigError(f"the run folder {run_dir!r} already holds checkpoints: choose another --run-name, "
                              f"or continue it with --resume {run_dir}")
    print(f"game {game}, levels {', '.join(levels)}; {config.num_envs} envs; run folder {run_dir}", flush=True)

    from architecture import A2CPolicy
    from model import learn
    fns = envs.env_fns(config.num_envs, game, levels)
    names = [f"{game}/{envs.level_for(i, game, levels)}" for i in range(config.num_envs)]
    if config.vec_env == "dummy":
        venv = envs.DummyVecEnv(fns, seed=config.seed, names=names)
    else:
        venv = envs.SubprocVecEnv(fns, seed=config.seed, names=names, restart=config.restart_workers,
                                  timeout=config.worker_timeout)
    extra = {"game": game, "levels": ",".join(levels), "command_line": " ".join([sys.executable] + sys.argv),
             "versions": library_versions()}
    try:
        return learn(A2CPolicy, venv, config.nsteps, config.total_timesteps, config.gamma, config.lam,
                     config.vf_coef, config.ent_coef, config.lr, config.max_grad_norm, config.log_interval,
                     noptepochs=config.noptepochs, nminibatches=config.nminibatches, seed=config.seed,
                     lr_schedule=config.lr_schedule, truncation_as_terminal=config.truncation_as_terminal,
                     keep_checkpoints=config.keep_checkpoints, run_dir=run_dir, runs_dir=config.runs_dir,
                     models_dir=config.models_dir, resume_from=checkpoint_dir, init_weights=args.init_weights,
                     progress=config.progress, extra_config=dict(extra, **run_settings(config)),
                     tf_threads=args.tf_threads)
    finally:
        venv.close()


def run_settings(config: TrainConfig) -> dict:
    """Settings learn() does not take as arguments but the run's config.json records (for --resume)."""
    names = ("vec_env", "restart_workers", "worker_timeout", "run_name", "progress")
    return dict({name: getattr(config, name) for name in names}, requested_game=config.game)


def library_versions() -> dict:
    from importlib import metadata
    versions = {"python": sys.version.split()[0]}
    for package in ("tensorflow", "stable-retro", "gymnasium", "numpy", "opencv-python-headless"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = explicit_options(parser, sys.argv[1:] if argv is None else argv)
    from errors import run_command
    try:
        return run_command(train, args, explicit, interrupted="interrupted (twice, or while starting): stopped "
                                                               "without saving; the last checkpoint is intact")
    finally:
        from vec_env import stop_helper_processes
        stop_helper_processes()   # reap multiprocessing's fork server and resource tracker: no orphan is left


if __name__ == "__main__":
    sys.exit(main())
