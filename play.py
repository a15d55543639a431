"""Watch a trained agent: `python play.py` plays the latest checkpoint (on a fresh clone, the agent shipped in
models/airstriker for the embedded default game); `python play.py --help` for options.

Examples:
    python play.py                                   # latest checkpoint, a window where there is a display
    python play.py --checkpoint runs/NAME --episodes 3 --deterministic    # the latest checkpoint of one run
    python play.py --record agent.mp4 --seed 1       # full-colour video, works without a display
    python play.py --level GreenHillZone.Act1        # a level by name (needs the Sonic ROM)
"""
import argparse
import os
import sys

from cli import ROM_NOTE, HelpFormatter, add_verbose_argument, examples_epilog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Play a trained A2C agent and print each episode's score.",
                                     formatter_class=HelpFormatter, epilog=examples_epilog(__doc__, ROM_NOTE))
    parser.add_argument("--checkpoint", default="latest",
                        help="'latest' (models/latest; before any training, on the embedded game: the agent shipped "
                             "in models/airstriker), a run folder, a checkpoint folder or a TF checkpoint prefix "
                             "such as models/260/model.ckpt")
    parser.add_argument("--game", default="auto", help="'auto', 'sonic' or a stable-retro game id")
    parser.add_argument("--level", default=None,
                        help="a level name (state), or an index into env.LEVELS; default: the held-out test level")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play")
    parser.add_argument("--deterministic", action="store_true",
                        help="take the most likely action instead of sampling from the policy")
    parser.add_argument("--record", metavar="FILE", help="write the episodes' frames to FILE.mp4 or FILE.gif")
    parser.add_argument("--window", action=argparse.BooleanOptionalAction, default=None,
                        help="show the game in a window (default: when a display is available)")
    parser.add_argument("--models-dir", default="models", help="folder whose 'latest' file names the checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of the action sampling and the sticky frames")
    add_verbose_argument(parser)
    return parser


def choose_level(envs, game: str, level):
    """--level as typed (None, a name or an index into env.LEVELS) -> a state name of `game`."""
    if level is None:
        return envs.TEST_LEVEL if game == envs.SONIC_GAME else envs.default_levels(game)[0]
    if level.isdigit():
        levels = envs.default_levels(game)
        if int(level) >= len(levels):
            raise envs.GameError(f"--level {level}: {level_count(len(levels))}")
        return levels[int(level)]
    envs.check_levels(game, [level])
    return level


def level_count(number: int) -> str:
    """What --level INDEX may be: 'the level list has 1 level (index 0)', '... 13 levels (0 to 12)'."""
    if number == 1:
        return "the level list has 1 level (index 0)"
    return f"the level list has {number} levels (0 to {number - 1})"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    return run_command(watch, args)


def watch(args) -> int:
    import env as envs
    from checkpoint import resolve_watched
    from errors import check_number
    from recording import EpisodeFrames, check_video_path, write_video
    check_number("--episodes", args.episodes, positive=True)
    check_number("--seed", args.seed, minimum=0)
    if args.record:
        check_video_path(args.record)
    game = envs.resolve_game(args.game)
    notice = envs.fallback_notice(args.game, game)
    if notice:
        print(notice, flush=True)
    level = choose_level(envs, game, args.level)
    checkpoint, shipped_notice = resolve_watched(args.checkpoint, args.models_dir, game)
    if shipped_notice:
        print(shipped_notice, flush=True)
    window = args.window if args.window is not None else bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    frames = EpisodeFrames() if args.record else None
    render_mode = "human" if window else None

    def make():
        return envs.make_level(game, level, render_mode=render_mode,
                               frame_sink=frames)

    from cli import import_tensorflow
    import_tensorflow(args.verbose)
    from architecture import A2CPolicy
    from model import play
    print(f"playing {game} / {level} with {checkpoint}", flush=True)
    venv = envs.DummyVecEnv([make], seed=args.seed)
    try:
        episodes = play(A2CPolicy, venv, checkpoint, episodes=args.episodes, deterministic=args.deterministic,
                        seed=args.seed)
    finally:
        venv.close()
    if args.record:
        written = write_video(args.record, frames.frames(len(episodes)))
        print(f"recorded {written} frames to {args.record}")
    mean = sum(e["r"] for e in episodes) / len(episodes)
    print(f"mean score over {len(episodes)} episode(s): {mean:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
