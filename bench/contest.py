"""The Retro Contest's protocol: fine-tune a checkpoint on each held-out level and score the whole fine-tuning.

"Gotta Learn Fast" (Nichol et al. 2018) scores an agent by the mean return of every episode that ends while it
learns one test level for 1 million steps, averaged over the test levels. This script does that with the
project's A2C: for each level, a new run starts from the checkpoint's weights (weights only: the optimizer
starts afresh) with the project's defaults, trains on 8 envs of that level for --steps agent steps, and every
episode that ends on the way counts. A stopped contest (Ctrl-C, kill) goes on when the same command runs again:
a finished level is kept, a level in the middle resumes from its last checkpoint. Outputs, in --out (default
bench/contest-results/):

    init/model.ckpt.*         the checkpoint's weights alone, what every level starts from
    init/source.json          the checkpoint they came from (a rerun must name the same one)
    runs/<level>/             one run folder per level (config.json, progress.csv, checkpoints)
    episodes/<level>.json     every episode that ended in the level's fine-tuning, rewritten after each update
    results.json, results.csv the table: per level and overall, the paper's metric, beside the paper's figures

Examples:
    python bench/contest.py --checkpoint latest          # the 4 held-out levels, 1M steps each: needs the Sonic ROM
    python bench/contest.py --checkpoint runs/NAME --levels default --steps 2048 --num-envs 2 --nsteps 256   # a minute
    python bench/contest.py --checkpoint runs/NAME --levels GreenHillZone.Act2 --steps 200000
"""
import argparse
import csv
import io
import json
import math
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from cli import ROM_NOTE, HelpFormatter, add_verbose_argument, examples_epilog  # noqa: E402
from config import TrainConfig  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "bench", "contest-results")
DEFAULT_STEPS = 1_000_000
DEFAULT_NUM_ENVS = 8        # agent.py's default on a one-level game; the learning benchmark's size
KEEP_CHECKPOINTS = 2        # per level: a stop resumes from the newest, so two are plenty
COLUMNS = ["level", "steps", "budget", "episodes", "mean_return", "mean_progress"]
OVERALL = "overall"
# "Gotta Learn Fast" (Nichol et al. 2018): mean score over the test levels, each the mean return of every
# episode of 1 million steps of learning that level (Sonic scores; humans: after two hours of practice on the
# training levels, one hour on each test level).
PAPER = [("PPO (from scratch)", "about 1,500"), ("joint PPO (pre-trained, then fine-tuned)", "about 3,100"),
         ("Rainbow", "about 2,750"), ("humans", "about 7,400")]
PAPER_CITATION = '"Gotta Learn Fast: A New Benchmark for Generalization in RL", Nichol et al. 2018'


class ContestError(ValueError):
    """A bad contest.py option, or an --out that holds another contest; the message says what to do."""


# ----------------------------------------------------------------------------- the metric

def episodes_up_to(episodes: list, timesteps: int) -> list:
    """The episodes that ended by `timesteps` steps of the level's run (each episode dict carries 't', the run's
    step count at the end of the update it ended in)."""
    return [e for e in episodes if e["t"] <= timesteps]


def level_row(level: str, episodes: list, steps_done: int, budget: int) -> dict:
    """One level's row (COLUMNS): its episodes up to the checkpoint (steps_done) and the budget, their count,
    mean return (the paper's metric) and mean fraction of the level reached (NaN when none, or not Sonic)."""
    counted = episodes_up_to(episodes, min(steps_done, budget))
    returns = [float(e["r"]) for e in counted]
    progress = [float(e["progress"]) for e in counted if "progress" in e]
    return {"level": level, "steps": min(steps_done, budget), "budget": budget, "episodes": len(counted),
            "mean_return": _mean(returns), "mean_progress": _mean(progress)}


def overall_row(rows: list) -> dict:
    """The OVERALL row: as the paper, the mean over levels of each level's mean return (levels without an
    episode yet left out); episodes and steps summed; the mean over levels of the mean progress."""
    returns = [row["mean_return"] for row in rows if not math.isnan(row["mean_return"])]
    progress = [row["mean_progress"] for row in rows if not math.isnan(row["mean_progress"])]
    return {"level": OVERALL, "steps": sum(row["steps"] for row in rows), "budget": sum(row["budget"] for row in rows),
            "episodes": sum(row["episodes"] for row in rows), "mean_return": _mean(returns),
            "mean_progress": _mean(progress)}


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else float("nan")


# ----------------------------------------------------------------------------- files of the contest

def level_paths(out: str, level: str) -> tuple:
    """(run folder, episodes file) of one level."""
    return os.path.join(out, "runs", level), os.path.join(out, "episodes", f"{level}.json")


def saved_timesteps(run_dir: str) -> tuple:
    """(the run's latest checkpoint folder, its step count), or (None, 0) before its first checkpoint."""
    from checkpoint import RunFolder, load_state
    latest = RunFolder(run_dir).latest()
    if latest is None:
        return None, 0
    return latest, int(load_state(latest).get("training", {}).get("timesteps", 0))


def read_record(path: str) -> dict:
    """A level's episodes file: {'level', 'timesteps': steps of its last update, 'episodes': [{'r': raw return,
    'l': length, 't': run steps at the end of its update[, 'progress']}]}; an empty record when there is none."""
    from checkpoint import CheckpointError
    if not os.path.exists(path):
        return {"timesteps": 0, "episodes": []}
    try:
        with open(path) as fh:
            record = json.load(fh)
        return {"level": record["level"], "timesteps": int(record["timesteps"]),
                "episodes": [dict(e, t=int(e["t"]), r=float(e["r"])) for e in record["episodes"]]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"the episodes file {path!r} is unreadable ({error}): delete it and the level's "
                              "run folder to fine-tune that level again") from None


def recorded_episodes(out: str, level: str) -> tuple:
    """(the level's latest checkpoint or None, its step count, the episodes recorded up to it). CheckpointError
    when the record stops short of the checkpoint: the episodes in between are lost."""
    from checkpoint import CheckpointError
    run_dir, path = level_paths(out, level)
    latest, steps = saved_timesteps(run_dir)
    record = read_record(path)
    if latest and record["timesteps"] < steps:
        raise CheckpointError(f"{path} records {record['timesteps']:,} steps but the level's run has {steps:,}: the "
                              f"episodes in between are lost; delete {run_dir} and {path} to fine-tune the level again")
    return latest, steps, episodes_up_to(record["episodes"], steps)


def write_json(path: str, data) -> None:
    """Write `data` as JSON, whole or not at all (checkpoint.write_atomic)."""
    from checkpoint import write_atomic
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1))


def check_same_contest(out: str, checkpoint: str) -> None:
    """Refuse an --out that holds the contest of another checkpoint (ContestError)."""
    path = os.path.join(out, "init", "source.json")
    if not os.path.exists(path):
        return
    try:
        with open(path) as fh:
            earlier = json.load(fh)["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ContestError(f"{path} is unreadable ({error}): choose another --out") from None
    if earlier != checkpoint:
        raise ContestError(f"{out} holds the contest of {earlier}, not of {checkpoint}: give --checkpoint {earlier} "
                           "to go on with it, or another --out for a new contest")


def check_same_settings(out: str, levels: list, configs: dict) -> None:
    """Refuse to go on with a level whose run trained with other settings (--num-envs, --nsteps, --seed, ...);
    the step budget may change."""
    from checkpoint import RunFolder
    from config import config_differences
    for level in levels:
        run_dir, _ = level_paths(out, level)
        if RunFolder(run_dir).latest() is None:
            continue
        changes = config_differences(RunFolder(run_dir).read_config(), configs[level])
        if changes:
            listed = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in changes)
            raise ContestError(f"{run_dir} was fine-tuned with other settings ({listed}): rerun with the options "
                               "it started with, or choose another --out")


def write_weights_only(source: str, folder: str) -> None:
    """Copy the policy's weights of the TF checkpoint `source` (no optimizer slots, no counters; export.py) to
    folder/model.ckpt, with folder/source.json naming `source`: a run started from them with init_weights
    begins with a fresh optimizer (model.Model.load restores the slots too when a checkpoint holds them). The
    folder appears whole or not at all; CheckpointError, with nothing written, when `source` does not fit."""
    from export import export_weights
    with tempfile.TemporaryDirectory() as tmp:
        export_weights(source, tmp)
        with open(os.path.join(tmp, "source.json"), "w") as fh:
            json.dump({"checkpoint": source}, fh)
        make_folder(os.path.dirname(folder))
        shutil.rmtree(folder + ".part", ignore_errors=True)
        shutil.copytree(tmp, folder + ".part")
        os.replace(folder + ".part", folder)


def make_folder(path: str) -> None:
    """Create the --out folder, or ContestError saying why it cannot be."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ContestError(f"cannot create the --out folder {path!r} ({error.strerror or error}): choose another "
                           "--out") from None


# ----------------------------------------------------------------------------- fine-tuning

def level_config(args, game: str, level: str, out: str):
    """The TrainConfig of one level's fine-tuning: the project's defaults, with the contest's size and budget."""
    return TrainConfig(game=game, levels=level, num_envs=args.num_envs, nsteps=args.nsteps,
                       nminibatches=args.nminibatches, total_timesteps=args.steps, seed=args.seed,
                       keep_checkpoints=KEEP_CHECKPOINTS, run_name=level, runs_dir=os.path.join(out, "runs"),
                       models_dir=os.path.join(out, "models"))


def fine_tune_level(out: str, level: str, config, init_prefix: str, checkpoint: str) -> None:
    """Fine-tune one level up to its budget (resuming its run when it has a checkpoint) and record every episode
    that ends; model.RunStopped (a KeyboardInterrupt) once a signal stopped it, with its last update saved."""
    import env as envs
    from architecture import A2CPolicy
    from model import train
    run_dir, path = level_paths(out, level)
    latest, steps, episodes = recorded_episodes(out, level)
    budget = config.updates_total * config.num_envs * config.nsteps
    if steps >= budget:
        print(f"level {level}: done ({steps:,} steps), kept", flush=True)
        return
    record = {"level": level, "timesteps": steps, "episodes": episodes}
    start = f"resuming at {steps:,} steps with {len(episodes)} episodes recorded" if latest else \
        "from the checkpoint's weights, a fresh optimizer"
    print(f"level {level}: fine-tuning {budget:,} steps on {config.num_envs} envs, {start}", flush=True)
    venv = envs.build_vec_env(config, config.game, [level])
    try:
        train(A2CPolicy, venv, config, run_dir=run_dir, resume_from=latest,
              init_weights=None if latest else init_prefix,
              extra_config={"game": config.game, "levels": level, "contest_checkpoint": checkpoint},
              callback=lambda stats: record_update(record, stats, path))
    finally:
        venv.close()


def record_update(record: dict, stats: dict, path: str) -> None:
    """train()'s callback: add the episodes that ended in this update (stamped with the run's step count) to
    the level's record and rewrite its file, so that a stop at any moment keeps them."""
    for episode in stats["episodes"]:
        kept = {"r": float(episode["r"]), "l": int(episode["l"]), "t": int(stats["timesteps"])}
        if "progress" in episode:
            kept["progress"] = float(episode["progress"])
        record["episodes"].append(kept)
    record["timesteps"] = int(stats["timesteps"])
    write_json(path, record)


# ----------------------------------------------------------------------------- the report

def results(out: str, levels: list, budget: int) -> list:
    """One row per level from what is saved (episodes up to each level's latest checkpoint), then OVERALL."""
    rows = []
    for level in levels:
        _latest, steps, episodes = recorded_episodes(out, level)
        rows.append(level_row(level, episodes, steps, budget))
    return rows + [overall_row(rows)]


def format_results(rows: list) -> str:
    """Rows (COLUMNS) -> an aligned text table, the OVERALL row below a rule; '-' for no number."""
    def cell(row, column):
        value = row[column]
        if column == "steps":
            return f"{row['steps']:,} of {row['budget']:,}"
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.3f}" if column == "mean_progress" else f"{value:,.1f}"
        return f"{value:,}" if isinstance(value, int) else str(value)
    columns = [c for c in COLUMNS if c != "budget"]
    from evaluate import aligned_table
    return aligned_table(columns, [[cell(row, c) for c in columns] for row in rows])


def paper_lines(sonic: bool) -> list:
    """The paper's figures beside ours, with a caveat when the game is not Sonic."""
    width = max(len(name) for name, _ in PAPER)
    lines = [f"the paper ({PAPER_CITATION}), mean over its test levels of the mean return over 1M steps:"]
    lines += [f"  {name:<{width}}  {figure}" for name, figure in PAPER]
    if not sonic:
        lines.append("note: this game is not Sonic; the paper's figures are Sonic scores, not comparable with these")
    return lines


def report(out: str, levels: list, budget: int, details: dict, sonic: bool) -> list:
    """Print the table and the paper's figures; write OUT/results.json (table, details, paper) and results.csv."""
    rows = results(out, levels, budget)
    print(format_results(rows) + "\n" + "\n".join(paper_lines(sonic)), flush=True)
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]
    write_json(os.path.join(out, "results.json"), dict(details, table=clean, comparable_with_paper=sonic,
                                                       paper={"source": PAPER_CITATION, "scores": dict(PAPER)}))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in clean)
    from checkpoint import write_atomic
    write_atomic(os.path.join(out, "results.csv"), text.getvalue())
    print(f"wrote {os.path.join(out, 'results.json')} and results.csv", flush=True)
    return rows


# ----------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter,
                                     epilog=examples_epilog(__doc__, ROM_NOTE))
    parser.add_argument("--checkpoint", required=True,
                        help="what to fine-tune: 'latest' (models/latest), a run folder, a checkpoint folder or a TF "
                             "checkpoint prefix. Its weights only: each level starts with a fresh optimizer")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="agent steps of fine-tuning per level, rounded down to whole updates (default: "
                             "%(default)s, the paper's budget)")
    parser.add_argument("--levels", default="held-out",
                        help="'held-out' (env.HELD_OUT_LEVELS, needs the Sonic ROM), 'default' (the embedded game's "
                             "level), or level names separated by commas")
    parser.add_argument("--num-envs", type=int, default=DEFAULT_NUM_ENVS, help="envs of the level (one process each)")
    parser.add_argument("--nsteps", type=int, default=TrainConfig.nsteps, help="steps per env per update")
    parser.add_argument("--nminibatches", type=int, default=TrainConfig.nminibatches,
                        help="minibatches per pass over each batch")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of the learner and the envs")
    parser.add_argument("--out", default=DEFAULT_OUT, help="results folder (default: bench/contest-results)")
    parser.add_argument("--models-dir", default="models", help="folder whose 'latest' file --checkpoint latest reads")
    add_verbose_argument(parser)
    return parser


def resolve_levels(spec: str) -> tuple:
    """--levels -> (game, [levels]); a Sonic set without the ROM is one GameError line that says how to import
    it and that `--levels default` runs the protocol on the embedded game."""
    import env as envs
    from evaluate import resolve_level_set
    if spec in ("held-out", "train") and not envs.rom_imported(envs.SONIC_GAME):
        raise envs.GameError(f"the contest's protocol fine-tunes on Sonic levels and needs the Sonic ROM: "
                             f"{envs.ROM_HELP}; `--levels default` runs the same protocol on the embedded game "
                             f"{envs.DEFAULT_GAME}")
    return resolve_level_set(spec)


def check_options(args) -> None:
    """ContestError (one line) for a value that cannot work; nothing is written before this passes."""
    from errors import check_number
    for option in ("steps", "num_envs", "nsteps", "nminibatches"):
        check_number(f"--{option.replace('_', '-')}", getattr(args, option), positive=True, error=ContestError)
    check_number("--seed", args.seed, minimum=0, error=ContestError)
    batch = args.num_envs * args.nsteps
    if args.steps < batch:
        raise ContestError(f"--steps {args.steps} is less than one update (--num-envs {args.num_envs} x --nsteps "
                           f"{args.nsteps} = {batch}): raise --steps or shrink the update")


def plan(args) -> dict:
    """Every check, before anything is written: the options, the levels, the checkpoint, what --out holds.
    -> {game, levels, checkpoint (as resolved), source (its absolute path), out, configs {level: TrainConfig},
    budget (steps per level, whole updates)}."""
    from checkpoint import resolve_checkpoint
    from config import validate
    check_options(args)
    game, levels = resolve_levels(args.levels)
    checkpoint = resolve_checkpoint(args.checkpoint, args.models_dir)
    source, out = os.path.abspath(checkpoint), os.path.abspath(args.out)
    configs = {level: level_config(args, game, level, out) for level in levels}
    for config in configs.values():
        validate(config)
    check_same_contest(out, source)
    check_same_settings(out, levels, configs)
    budget = configs[levels[0]].updates_total * args.num_envs * args.nsteps
    return dict(game=game, levels=levels, checkpoint=checkpoint, source=source, out=out, configs=configs,
                budget=budget)


def contest(args) -> int:
    """Check everything, fine-tune each level in turn, report. -> exit code (the signal's after a stop)."""
    import env as envs
    p = plan(args)
    updates = p["budget"] // (args.num_envs * args.nsteps)
    print(f"contest: {p['checkpoint']} fine-tuned on {p['game']}, {len(p['levels'])} level(s) x {p['budget']:,} "
          f"steps ({updates} update{'s' * (updates > 1)} of {args.num_envs} envs x {args.nsteps} steps); results in "
          f"{args.out}", flush=True)
    from cli import import_tensorflow
    import_tensorflow(args.verbose)
    from model import RunStopped
    init = os.path.join(p["out"], "init")
    if not os.path.exists(os.path.join(init, "source.json")):
        write_weights_only(p["source"], init)
    details = {"checkpoint": p["source"], "game": p["game"], "levels": p["levels"], "steps_per_level": p["budget"],
               "num_envs": args.num_envs, "nsteps": args.nsteps, "nminibatches": args.nminibatches, "seed": args.seed}
    sonic = p["game"] == envs.SONIC_GAME
    try:
        for level in p["levels"]:
            fine_tune_level(p["out"], level, p["configs"][level], os.path.join(init, "model.ckpt"), p["source"])
    except RunStopped as stopped:
        report(p["out"], p["levels"], p["budget"], details, sonic)
        print("stopped: to go on, run the same command again (not agent.py --resume, which would not record the "
              "level's episodes): finished levels are kept, the level in the middle resumes from its last "
              "checkpoint", flush=True)
        return stopped.exit_code
    report(p["out"], p["levels"], p["budget"], details, sonic)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    from evaluate import EvaluateError
    try:
        return run_command(contest, args, user_errors=(ContestError, EvaluateError),
                           interrupted="interrupted (twice, or while starting): the last checkpoint of each level "
                                       "is intact; run the same command again to go on")
    finally:
        from vec_env import stop_helper_processes
        stop_helper_processes()


if __name__ == "__main__":
    sys.exit(main())
