"""Train the A2C agent: `python agent.py` (the defaults that learn best on the learning benchmark),
`python agent.py --exact-2018` (every setting of the 2018 scripts), `python agent.py --help` for every option.

Examples:
    python agent.py                                    # Sonic's env.LEVELS with the ROM, else the default game
    python agent.py --num-envs 2 --nsteps 128 --total-timesteps 20000    # a small run for a small machine
    python agent.py --exact-2018                       # the 2018 scripts: TF1 RMSProp, 13 envs x 2048 steps
    python agent.py --resume latest                    # continue the newest run exactly where it stopped
"""
import argparse
import sys

from cli import ROM_NOTE, HelpFormatter, add_verbose_argument, examples_epilog, typed_option_names
from config import add_config_arguments


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


def settings(args, typed: set) -> tuple:
    """-> (config with num_envs decided, game, levels, checkpoint folder to resume or None, run folder)."""
    import env as envs
    from checkpoint import checked_resume, run_dir_for
    from config import resolve, with_envs
    resume = checked_resume(args.resume, args.models_dir) if args.resume else None   # (checkpoint, run, saved)
    config = resolve(vars(args), typed, resume and resume[2], args.allow_config_change, resume and resume[0])
    game = envs.resolve_game(config.game)
    notice = envs.fallback_notice(config.game, game)
    if notice:
        print(notice, flush=True)
    chosen = envs.chosen_levels(game, config.levels)
    config = with_envs(config, game, chosen, "num_envs" in typed)
    run_dir = run_dir_for(config, game, args.init_weights, resume and resume[1])
    return config, game, chosen or envs.default_levels(game), resume and resume[0], run_dir


def train(args, typed: set) -> int:
    from errors import check_number
    check_number("--tf-threads", args.tf_threads, minimum=0)
    config, game, levels, resume_from, run_dir = settings(args, typed)
    if config.eval_every or config.video_every:   # a wrong --eval-levels (or no Sonic ROM for it) answers now
        from monitor import evaluation_levels
        evaluation_levels(config.eval_levels, game)
    print(f"game {game}, levels {', '.join(levels)}; {config.num_envs} envs; run folder {run_dir}", flush=True)
    if config.backend == "ray" and config.ray_address:   # before TensorFlow loads: a wrong address answers at once
        from ray_backend import check_address
        check_address(config.ray_address)
    from cli import import_tensorflow, library_versions
    import_tensorflow(args.verbose)
    import env as envs
    from architecture import A2CPolicy
    from model import RunStopped, check_resumable, train
    if resume_from:   # before train() rewrites the run's config.json
        check_resumable(resume_from, run_dir)
    venv = envs.build_vec_env(config, game, levels)
    # config.json: every TrainConfig field, plus the game and levels in force, what was asked, versions
    extra = {"game": game, "levels": ",".join(levels), "requested_game": config.game,
             "command_line": " ".join([sys.executable] + sys.argv), "versions": library_versions()}
    try:
        train(A2CPolicy, venv, config, run_dir=run_dir, resume_from=resume_from, init_weights=args.init_weights,
              extra_config=extra, tf_threads=args.tf_threads)
        return 0
    except RunStopped as stopped:   # learn saved what there was and said so; the shell's code for the signal
        return stopped.exit_code
    finally:
        venv.close()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    typed = typed_option_names(parser, sys.argv[1:] if argv is None else argv)
    from errors import run_command
    try:
        return run_command(train, args, typed, interrupted="interrupted (twice, or while starting): stopped "
                                                            "without saving; the last checkpoint is intact")
    finally:
        from vec_env import stop_helper_processes
        stop_helper_processes()   # reap multiprocessing's fork server and resource tracker: no orphan is left


if __name__ == "__main__":
    sys.exit(main())
