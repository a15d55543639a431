"""Score a checkpoint over a set of levels: `python evaluate.py --levels held-out --episodes 5` (`--help`).

Level sets: `train` (env.LEVELS), `held-out` (env.HELD_OUT_LEVELS, the Retro Contest's test levels), `default`
(the embedded default game's level), or level names separated by commas. The table gives, per level, the
mean, standard deviation, min and max of the raw episode score (info['episode']['r'], the game's own units),
the mean episode length in agent steps and, for Sonic, the mean fraction of the level reached.

Examples:
    python evaluate.py --levels default --episodes 5       # the embedded default game: no ROM needed
    python evaluate.py --checkpoint runs/NAME --episodes 3 --out scores.csv
    python evaluate.py --levels held-out --episodes 5 --deterministic --out eval.json    # needs the Sonic ROM
    python evaluate.py --levels GreenHillZone.Act2 --episodes 10    # one level by name (needs the Sonic ROM)
"""
import argparse
import csv
import functools
import json
import math
import sys

from cli import ROM_NOTE, HelpFormatter, add_verbose_argument, examples_epilog

LEVEL_SETS = ("train", "held-out", "default")
COLUMNS = ["level", "episodes", "mean", "std", "min", "max", "mean_length", "mean_progress"]
OVERALL = "overall"


class EvaluateError(ValueError):
    """A bad evaluate.py option; the message says what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Score a trained A2C agent over a set of levels.",
                                     formatter_class=HelpFormatter, epilog=examples_epilog(__doc__, ROM_NOTE))
    parser.add_argument("--checkpoint", default="latest",
                        help="'latest' (models/latest; before any training, on the embedded game: the agent shipped "
                             "in models/airstriker), a run folder, a checkpoint folder or a TF checkpoint prefix")
    parser.add_argument("--levels", default="auto",
                        help="'train' (env.LEVELS), 'held-out' (env.HELD_OUT_LEVELS), 'default' (the default "
                             "game's level), comma-separated level names, or 'auto': held-out when the Sonic ROM "
                             "is imported, else default")
    parser.add_argument("--game", default="auto",
                        help="the game of comma-separated level names: 'auto', 'sonic' or a stable-retro game id")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per level")
    parser.add_argument("--deterministic", action="store_true",
                        help="take the most likely action instead of sampling from the policy")
    parser.add_argument("--out", metavar="FILE", help="also write the table to FILE.csv or FILE.json")
    parser.add_argument("--models-dir", default="models", help="folder whose 'latest' file names the checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of the environments and the action sampling")
    add_verbose_argument(parser)
    return parser


# ----------------------------------------------------------------------------- levels

def resolve_level_set(spec: str, game_choice: str = "auto") -> tuple:
    """--levels as typed -> (game, [level names]). A Sonic set without the Sonic ROM raises env.GameError
    saying how to import it; unknown level names raise GameError listing the valid ones."""
    import env as envs
    if spec == "auto":
        spec = "held-out" if envs.rom_imported(envs.SONIC_GAME) else "default"
    if spec == "train":
        return envs.resolve_game("sonic"), list(envs.LEVELS)
    if spec == "held-out":
        return envs.resolve_game("sonic"), list(envs.HELD_OUT_LEVELS)
    if spec == "default":
        return envs.DEFAULT_GAME, [envs.DEFAULT_STATE]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise EvaluateError(f"--levels {spec!r}: give {', '.join(LEVEL_SETS)} or level names separated by commas")
    sonic_states = envs.stable_retro.data.list_states(envs.SONIC_GAME, envs.stable_retro.data.Integrations.ALL)
    if game_choice == "auto" and set(names) <= set(sonic_states):
        game_choice = "sonic"                      # Sonic level names: the Sonic ROM or its import instructions
    game = envs.resolve_game(game_choice)
    envs.check_levels(game, names)
    return game, names


def level_factories(game: str, levels: list) -> dict:
    """level name -> a zero-argument factory of its fully wrapped environment (env.make_level)."""
    import env as envs
    return {level: functools.partial(envs.make_level, game, level) for level in levels}


# ----------------------------------------------------------------------------- the evaluation core

def evaluate_levels(factories: dict, play_episodes, episodes: int, seed: int = 0, stream=None) -> dict:
    """Play `episodes` episodes on every level, one level after another (one emulator at a time).

    factories: level name -> zero-argument env factory (a gymnasium env whose info carries 'episode' at the
    end of an episode, as env.EpisodeStats adds). play_episodes(venv, episodes=n) -> list of `episodes` episode
    dicts {'r', 'l'[, 'progress']}, played on a one-env DummyVecEnv seeded with `seed` (model.play bound to a
    checkpoint, or a test's own player). Returns level name -> list of episode dicts.
    """
    from vec_env import DummyVecEnv
    played = {}
    for level, factory in factories.items():
        print(f"level {level}:", file=stream or sys.stdout, flush=True)
        venv = DummyVecEnv([factory], seed=seed, names=[level])
        try:
            played[level] = list(play_episodes(venv, episodes=episodes))[:episodes]
        finally:
            venv.close()
    return played


def summarise(level: str, episodes: list) -> dict:
    """Episode dicts of one level -> a table row (COLUMNS): score statistics (std over episodes, ddof 0),
    mean length, mean progress (NaN when the episodes carry none, i.e. not Sonic)."""
    scores = [float(e["r"]) for e in episodes]
    progress = [float(e["progress"]) for e in episodes if "progress" in e]
    mean = sum(scores) / len(scores)
    return {
        "level": level,
        "episodes": len(scores),
        "mean": mean,
        "std": math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores)),
        "min": min(scores),
        "max": max(scores),
        "mean_length": sum(float(e["l"]) for e in episodes) / len(episodes),
        "mean_progress": sum(progress) / len(progress) if progress else float("nan"),
    }


def score_table(played: dict) -> list:
    """level name -> episode dicts  ->  one row per level, then the OVERALL row over every episode."""
    rows = [summarise(level, episodes) for level, episodes in played.items()]
    all_episodes = [e for episodes in played.values() for e in episodes]
    return rows + [summarise(OVERALL, all_episodes)]


# ----------------------------------------------------------------------------- output

def format_score_table(rows: list) -> str:
    """Rows (COLUMNS) -> an aligned text table; the OVERALL row below a rule. (logger.format_table prints the
    training table, one row as a box, in the 2018 scripts' format.)"""
    def cell(value):
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
        return str(value)
    return aligned_table(COLUMNS, [[cell(row[c]) for c in COLUMNS] for row in rows])


def aligned_table(columns: list, cells: list) -> str:
    """Header and rows of text cells -> aligned lines (the first column left, the others right), the last row
    (an overall one) below a rule."""
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    def line(values):
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))
    rule = "-" * len(line(columns))
    body = [line(values) for values in cells]
    return "\n".join([line(columns), rule, *body[:-1], rule, body[-1]])


def check_out_path(path: str) -> None:
    """Raise EvaluateError early (before any playing) for an --out that cannot be written."""
    from outputs import check_output_file
    check_output_file(path, "--out", (".csv", ".json"), EvaluateError)


def write_results(path: str, rows: list, played: dict, details: dict) -> None:
    """The table as CSV (COLUMNS, the OVERALL row last; NaN as an empty cell), or as JSON with `details`
    (checkpoint, game, options) and every episode. Written whole or not at all (outputs.replaced_on_success)."""
    from outputs import replaced_on_success
    with replaced_on_success(path, "--out", EvaluateError) as tmp:
        _write_table(tmp, rows, played, details)


def _write_table(path: str, rows: list, played: dict, details: dict) -> None:
    if path.lower().endswith(".json"):
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]
        with open(path, "w") as fh:
            json.dump(dict(details, table=clean, episodes=played), fh, indent=2)
        return
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})


# ----------------------------------------------------------------------------- the script

def checkpoint_player(checkpoint: str, deterministic: bool, seed: int, verbose: bool = False):
    """play_episodes(venv, episodes) for evaluate_levels: model.play with the A2C policy of `checkpoint`.
    TensorFlow's start-up lines are hidden unless `verbose`."""
    from cli import import_tensorflow
    import_tensorflow(verbose)
    from architecture import A2CPolicy
    from model import play
    return functools.partial(play, A2CPolicy, load_path=checkpoint, deterministic=deterministic, seed=seed)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    return run_command(evaluate, args, user_errors=(EvaluateError,))


def evaluate(args) -> int:
    from checkpoint import resolve_watched
    from errors import check_number
    check_number("--episodes", args.episodes, positive=True)
    check_number("--seed", args.seed, minimum=0)
    if args.out:
        check_out_path(args.out)
    game, levels = resolve_level_set(args.levels, args.game)
    checkpoint, shipped_notice = resolve_watched(args.checkpoint, args.models_dir, game)
    if shipped_notice:
        print(shipped_notice, flush=True)
    mode = "deterministic" if args.deterministic else "sampled"
    print(f"evaluating {checkpoint} on {game}: {len(levels)} level(s) x {args.episodes} episode(s), {mode} actions",
          flush=True)
    player = checkpoint_player(checkpoint, args.deterministic, args.seed, args.verbose)
    played = evaluate_levels(level_factories(game, levels), player, args.episodes, seed=args.seed)
    rows = score_table(played)
    print(format_score_table(rows))
    if args.out:
        write_results(args.out, rows, played, {"checkpoint": checkpoint, "game": game, "levels": levels,
                                               "episodes_per_level": args.episodes,
                                               "deterministic": args.deterministic, "seed": args.seed})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
