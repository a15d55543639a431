"""Train the A2C agent: `python agent.py` (the defaults that learn best on the learning benchmark),
`python agent.py --exact-2018` (every setting of the 2018 scripts), `python agent.py --help` for every option.

Examples:
    python agent.py                                    # Sonic's env.LEVELS with the ROM, else the default game
    python agent.py --num-envs 2 --nsteps 128 --total-timesteps 20000    # a small run for a small machine
    python agent.py --exact-2018                       # the 2018 scripts: TF1 RMSProp, 13 envs x 2048 steps
    python agent.py --resume latest                    # continue the newest run exactly where it stopped
"""
import argparse
import dataclasses
import os
import sys

from cli import ROM_NOTE, HelpFormatter, add_verbose_argument, examples_epilog
from config import TrainConfig, add_config_arguments, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train A2C on Sonic the Hedgehog (or the embedded default game).",
                                     formatter_class=HelpFormatter, epilog=examples_epilog(__doc__, ROM_NOTE))
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="PATH|latest",
                        help="continue a run exactly: 'latest', a run folder or a checkpoint folder")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: accept hyperparameters that differ from the run's saved config")
    parser.add_argument("--init-weights", metavar="CHECKPOINT",
                        help="start a new run from these weights (a checkpoint of this project or of the 2018 scripts)")
    parser.add_argument("--tf-threads", type=int, default=0, help="cap TensorFlow's CPU threads (0: TF decides)")
    add_verbose_argument(parser)
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
    from checkpoint import CheckpointError, load_state, resolve_checkpoint
    from config import BEHAVIOUR_2018, ConfigError, config_differences
    checkpoint_dir = os.path.dirname(resolve_checkpoint(args.resume, args.models_dir, option="--resume"))
    saved = load_state(checkpoint_dir).get("config")
    if not saved:
        raise CheckpointError(f"{checkpoint_dir!r} holds no run config: start a new run from its weights with "
                              "--init-weights")
    mistyped = mistyped_settings(saved)
    if mistyped:
        raise CheckpointError(f"the checkpoint {checkpoint_dir!r} is corrupt (state.json: the setting "
                              f"{mistyped[0]}); resume from an earlier one in the same folder")
    fields = TrainConfig.__dataclass_fields__
    # a run saved before the optimizer options existed trained with the 2018 optimizer and objective
    values = {name: value for name, value in BEHAVIOUR_2018.items() if name not in saved}
    values.update({name: saved[name] for name in fields if name in saved})
    values.update({name: getattr(args, name) for name in explicit if name in fields})
    config = TrainConfig(**values)
    changes = config_differences(saved, config)
    if changes and not args.allow_config_change:
        listed = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in changes)
        raise ConfigError(f"--resume would change the run's settings ({listed}): add --allow-config-change "
                          "if that is deliberate, or drop those options")
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint_dir)))
    return config, checkpoint_dir, run_dir


def mistyped_settings(saved: dict) -> list:
    """The settings of a saved run config whose value is not of its TrainConfig field's type, as
    "nsteps 'x' (not int)" (a corrupt or hand-edited state.json: validate() could not even compare them)."""
    kinds = {"int": int, "float": float, "str": str, "bool": bool, int: int, float: float, str: str, bool: bool}
    out = []
    for f in dataclasses.fields(TrainConfig):
        kind, value = kinds.get(f.type), saved.get(f.name)
        if kind is None or f.name not in saved:
            continue
        accepted = (int, float) if kind is float else kind   # JSON writes 1.0 as 1.0, but a user may write 1
        if not isinstance(value, accepted) or isinstance(value, bool) != (kind is bool):
            out.append(f"{f.name} {value!r} (not {kind.__name__})")
    return out


def check_resumable(checkpoint_dir: str, run_dir: str) -> None:
    """Raise CheckpointError now, before env workers start, for what learn() reads on --resume and would fail
    on (with a traceback, after rewriting the run's config.json): the training state, config.json, progress.csv."""
    from checkpoint import RunFolder
    from logger import read_progress_table
    from model import read_training_state
    read_training_state(checkpoint_dir)
    RunFolder(run_dir).read_config()
    read_progress_table(os.path.join(run_dir, "progress.csv"))


def train(args, explicit: set) -> str:
    import env as envs
    from checkpoint import default_run_dir, ensure_writable, resolve_checkpoint
    from config import ConfigError, validate
    from errors import check_number

    checkpoint_dir = run_dir = None
    if args.resume:
        config, checkpoint_dir, run_dir = resumed_config(args, explicit)
    else:
        config = config_from_args(args)
        if config.exact_2018:   # the 2018 settings, except what was typed on the command line
            from config import as_2018
            typed = {name: getattr(config, name) for name in explicit if hasattr(config, name)}
            config = dataclasses.replace(as_2018(config), **typed)
    game = envs.resolve_game(config.game)
    notice = envs.fallback_notice(config.game, game)
    if notice:
        print(notice, flush=True)
    chosen = [lv.strip() for lv in config.levels.split(",") if lv.strip()]
    if config.levels.strip() and not chosen:
        raise ConfigError(f"--levels {config.levels!r} names no level: give level names separated by commas")
    levels = chosen or envs.default_levels(game)
    envs.check_levels(game, levels)
    if config.eval_every or config.video_every:   # a wrong --eval-levels (or no Sonic ROM for it) answers now
        from monitor import evaluation_levels
        evaluation_levels(config.eval_levels, game)
    # default: one env per chosen level, else as many as env.LEVELS has (13; the default game repeats its level)
    if config.backend == "ray":   # the workers hold the envs (a typed --num-envs must agree: validate)
        config.num_envs = config.num_envs if "num_envs" in explicit else config.num_workers * config.envs_per_worker
    else:
        config.num_envs = config.num_envs or default_num_envs(config, game, chosen)
    validate(config)
    check_number("--tf-threads", args.tf_threads, minimum=0)
    if config.vec_env == "dummy" and config.num_envs > 1:
        raise ConfigError("--vec-env dummy runs every env in this process, and stable-retro allows one emulator "
                          "per process: use --vec-env subproc or --num-envs 1")
    ensure_writable(config.runs_dir, "runs")
    ensure_writable(config.models_dir, "models")
    if args.init_weights:   # a wrong path is reported now, before envs start or a run folder is made
        resolve_checkpoint(args.init_weights, config.models_dir, option="--init-weights")
    if run_dir is None:
        run_dir = (os.path.join(config.runs_dir, config.run_name) if config.run_name
                   else default_run_dir(config.runs_dir, game))
        if os.path.exists(os.path.join(run_dir, "checkpoints")) and os.listdir(os.path.join(run_dir, "checkpoints")):
            raise ConfigError(f"the run folder {run_dir!r} already holds checkpoints: choose another --run-name, "
                              f"or continue it with --resume {run_dir}")
    print(f"game {game}, levels {', '.join(levels)}; {config.num_envs} envs; run folder {run_dir}", flush=True)

    if config.backend == "ray" and config.ray_address:   # before TensorFlow loads: a wrong address answers at once
        from ray_backend import check_address
        check_address(config.ray_address)
    from cli import import_tensorflow
    import_tensorflow(args.verbose)
    from architecture import A2CPolicy
    from model import RunStopped, train
    if checkpoint_dir:   # before train() rewrites the run's config.json
        check_resumable(checkpoint_dir, run_dir)
    venv = build_envs(config, game, levels)
    # config.json: every TrainConfig field, plus the game and levels in force, what was asked, versions
    extra = {"game": game, "levels": ",".join(levels), "requested_game": config.game,
             "command_line": " ".join([sys.executable] + sys.argv), "versions": library_versions()}
    try:
        return train(A2CPolicy, venv, config, run_dir=run_dir, resume_from=checkpoint_dir,
                     init_weights=args.init_weights, extra_config=extra, tf_threads=args.tf_threads)
    except RunStopped as stopped:   # learn saved what there was and said so; the shell's code for the signal
        return stopped.exit_code
    finally:
        venv.close()


def default_num_envs(config: TrainConfig, game: str, chosen_levels: list) -> int:
    """One env per level: the chosen levels, else env.LEVELS (13, as the 2018 scripts). A game with one
    level (the embedded default) gets 8: the size the learning benchmark measures, and plenty for 2 cores."""
    import env as envs
    if chosen_levels:
        return len(chosen_levels)
    if game == envs.SONIC_GAME or config.exact_2018:
        return len(envs.LEVELS)
    return 8


def build_envs(config: TrainConfig, game: str, levels: list):
    """The envs the learner samples from: env i plays level i mod len(levels) and is seeded seed + i."""
    import env as envs
    fns = envs.env_fns(config.num_envs, game, levels)
    names = [f"{game}/{envs.level_for(i, game, levels)}" for i in range(config.num_envs)]
    if config.backend == "ray":   # W x E envs on Ray's rollout workers; the ROM is checked on every worker machine
        from ray_backend import RaySampler
        return RaySampler(fns, config.num_workers, config.envs_per_worker, seed=config.seed,
                          address=config.ray_address, names=names, game=game, hang_timeout=config.worker_timeout)
    if config.vec_env == "dummy":
        return envs.DummyVecEnv(fns, seed=config.seed, names=names)
    return envs.SubprocVecEnv(fns, seed=config.seed, names=names, restart=config.restart_workers,
                              timeout=config.worker_timeout)


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
