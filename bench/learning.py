"""The learning benchmark: does a configuration learn, and how fast, on the embedded default game?

Trains each named configuration for a step budget over several seeds (each run is `agent.py` in its own
process, so a stopped benchmark resumes every run from its last checkpoint), then writes, per seed and as the
median over seeds: the mean return of the last 100 episodes, the policy entropy and the explained variance
against agent steps, and the wall time. Outputs, in --out (default bench/learning-results/):

    runs/<config>-s<seed>/     the runs themselves (progress.csv, checkpoints)
    results.json               every curve, and the milestones table
    results.md                 the table: median [min - max] return at each milestone, wall time
    learning.png               one band (min-max over seeds) and median line per configuration

Examples:
    python bench/learning.py --configs defaults,2018 --seeds 3 --steps 200000 --background
    python bench/learning.py --configs defaults --seeds 1 --steps 100000      # a one-seed screen
    python bench/learning.py --configs defaults --seed-list 3,4 --steps 200000 # seeds 3 and 4 only
    python bench/learning.py --report-only                                     # redraw from what is there
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "bench", "learning-results")

def options(optimizer: str, normalize: bool, epochs: int, minibatches: int, lr: str, clip: str = "",
            ent_coef: str = "", epsilon: str = "", cap: str = "0", max_kl: str = "0", vf_coef: str = "0.5",
            value_after_kl: bool = False, life_loss: bool = False, gamma: str = "", lam: str = "",
            life_penalty: str = "0") -> list:
    """The agent.py options of one configuration: the optimizer, advantages, passes, learning rate, policy loss
    (the clip with `clip`, else the capped loss with `cap` above 0, else A2C's), KL bound (0: off), value weight,
    life-loss penalty, --value-after-kl and --life-loss-terminal always, so that a change of the defaults cannot
    change a configuration; where given the entropy weight, the optimizer's epsilon, the discount and GAE's
    lambda."""
    loss = ["--policy-loss", "clip", "--clip-range", clip] if clip else \
        ["--policy-loss", "capped", "--ratio-cap", cap] if float(cap) else ["--policy-loss", "a2c"]
    extra = loss + ["--max-kl", max_kl, "--vf-coef", vf_coef, "--life-loss-penalty", life_penalty] + \
        (["--ent-coef", ent_coef] if ent_coef else []) + (["--epsilon", epsilon] if epsilon else []) + \
        (["--gamma", gamma] if gamma else []) + (["--lam", lam] if lam else []) + \
        (["--value-after-kl"] if value_after_kl else ["--no-value-after-kl"]) + \
        (["--life-loss-terminal"] if life_loss else ["--no-life-loss-terminal"])
    return ["--optimizer", optimizer, "--normalize-advantages" if normalize else "--no-normalize-advantages",
            *extra, "--noptepochs", str(epochs), "--nminibatches", str(minibatches), "--lr", lr]


def life_cut_defaults(**changes) -> list:
    """The agent.py options of the defaults from --life-loss-terminal until --life-loss-penalty (no penalty), spelled
    out (so that a later change of the defaults cannot change these configurations), with `changes` (options()
    arguments) applied: life_penalty="0.25" gives the present defaults."""
    settings = dict(optimizer="adam", normalize=True, epochs=4, minibatches=8, lr="2e-4", cap="1", max_kl="0.02",
                    vf_coef="5.0", life_loss=True)
    return options(**{**settings, **changes})


# name -> agent.py options. Every run adds the size (--num-envs, --nsteps), the seed and the budget.
CONFIGS = {
    "defaults": [],
    "2018": ["--exact-2018"],
    "rmsprop0-raw-4x8": options("rmsprop", False, 4, 8, "2e-4"),
    "rmsprop0-raw-4x8-lr4e-4": options("rmsprop", False, 4, 8, "4e-4"),
    "rmsprop0-norm-1x8": options("rmsprop", True, 1, 8, "2e-4"),      # the defaults until the ratio cap and KL bound
    "rmsprop0-norm-2x8": options("rmsprop", True, 2, 8, "2e-4"),
    "rmsprop0-norm-1x8-lr4e-4": options("rmsprop", True, 1, 8, "4e-4"),
    "rmsprop0-norm-1x32": options("rmsprop", True, 1, 32, "2e-4"),
    "rmsprop0-norm-1x32-lr4e-4": options("rmsprop", True, 1, 32, "4e-4"),
    "rmsprop0-norm-1x32-lr8e-4": options("rmsprop", True, 1, 32, "8e-4"),
    "rmsprop0-norm-1x16-lr8e-4": options("rmsprop", True, 1, 16, "8e-4"),
    "rmsprop0-raw-1x32-lr4e-4": options("rmsprop", False, 1, 32, "4e-4"),
    "rmsprop0-raw-1x32-lr8e-4": options("rmsprop", False, 1, 32, "8e-4"),
    "rmsprop0-raw-1x32-lr1.6e-3": options("rmsprop", False, 1, 32, "1.6e-3"),
    "rmsprop0-raw-1x32-lr8e-4-eps1e-4": options("rmsprop", False, 1, 32, "8e-4", epsilon="1e-4"),
    "rmsprop0-raw-1x32-lr8e-4-eps1e-3": options("rmsprop", False, 1, 32, "8e-4", epsilon="1e-3"),
    "rmsprop0-raw-1x32-lr8e-4-ent0.001": options("rmsprop", False, 1, 32, "8e-4", ent_coef="0.001"),
    "rmsprop0-raw-1x32-lr8e-4-ent0.003": options("rmsprop", False, 1, 32, "8e-4", ent_coef="0.003"),
    "rmsprop0-norm-1x32-lr4e-4-ent0.05": options("rmsprop", True, 1, 32, "4e-4", ent_coef="0.05"),
    "rmsprop0-norm-1x32-lr4e-4-cap1": options("rmsprop", True, 1, 32, "4e-4", cap="1"),
    "rmsprop0-raw-1x32-lr8e-4-cap1": options("rmsprop", False, 1, 32, "8e-4", cap="1"),
    "rmsprop0-norm-4x8-cap1": options("rmsprop", True, 4, 8, "2e-4", cap="1"),
    "rmsprop0-norm-1x8-lr4e-4-cap1": options("rmsprop", True, 1, 8, "4e-4", cap="1"),
    "rmsprop0-norm-1x8-cap1": options("rmsprop", True, 1, 8, "2e-4", cap="1"),
    "rmsprop0-norm-4x8-cap1-kl0.02": options("rmsprop", True, 4, 8, "2e-4", cap="1", max_kl="0.02"),
    "rmsprop0-norm-1x32-lr4e-4-cap1-kl0.02": options("rmsprop", True, 1, 32, "4e-4", cap="1", max_kl="0.02"),
    "adam-norm-4x8-cap1-kl0.02": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02"),   # until vf 5
    "adam-norm-4x8-cap1": options("adam", True, 4, 8, "2e-4", cap="1"),
    "adam-norm-4x8-cap1-kl0.05": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.05"),
    "adam-norm-4x8-lr4e-4-cap1-kl0.02": options("adam", True, 4, 8, "4e-4", cap="1", max_kl="0.02"),
    "adam-norm-4x8-cap1-kl0.01": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.01"),
    "adam-norm-8x8-cap1-kl0.02": options("adam", True, 8, 8, "2e-4", cap="1", max_kl="0.02"),
    "adam-norm-4x8-lr4e-4-cap1-kl0.01": options("adam", True, 4, 8, "4e-4", cap="1", max_kl="0.01"),
    "adam-norm-4x8-lr1e-4-cap1-kl0.02": options("adam", True, 4, 8, "1e-4", cap="1", max_kl="0.02"),
    "adam-norm-4x8-cap1-kl0.02-vf1": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02", vf_coef="1.0"),
    "adam-norm-4x8-cap1-kl0.02-vf2": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02", vf_coef="2.0"),
    # the defaults until --life-loss-terminal:
    "adam-norm-4x8-cap1-kl0.02-vf5": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02", vf_coef="5.0"),
    "adam-norm-4x8-cap1-kl0.04-vf5": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.04", vf_coef="5.0"),
    "adam-norm-4x8-cap1-kl0.02-vf5-vkl": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02", vf_coef="5.0",
                                                 value_after_kl=True),
    "adam-norm-4x8-cap1-kl0.04-vf5-vkl": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.04", vf_coef="5.0",
                                                 value_after_kl=True),
    "adam-norm-4x8-lr1e-4-cap1-kl0.02-vf5": options("adam", True, 4, 8, "1e-4", cap="1", max_kl="0.02", vf_coef="5.0"),
    "adam-norm-4x4-cap1-kl0.02-vf5": options("adam", True, 4, 4, "2e-4", cap="1", max_kl="0.02", vf_coef="5.0"),
    "adam-norm-4x8-lr4e-4-cap1-kl0.02-vf5": options("adam", True, 4, 8, "4e-4", cap="1", max_kl="0.02", vf_coef="5.0"),
    "adam-norm-4x8-cap1-kl0.04-vf5-ent0.02": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.04", vf_coef="5.0",
                                                     ent_coef="0.02"),
    "adam-norm-4x8-cap1-kl0.02-vf10": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02", vf_coef="10.0"),
    "adam-norm-4x8-cap1-kl0.02-ent0.001": options("adam", True, 4, 8, "2e-4", cap="1", max_kl="0.02", ent_coef="0.001"),
    # the defaults from --life-loss-terminal until --life-loss-penalty:
    "adam-norm-4x8-cap1-kl0.02-vf5-life": life_cut_defaults(),
    "adam-norm-4x8-cap1-kl0.04-vf5-life": life_cut_defaults(max_kl="0.04"),
    "adam-norm-4x8-lr4e-4-cap1-kl0.02-vf5-life": life_cut_defaults(lr="4e-4"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-g0.995": life_cut_defaults(gamma="0.995"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-g0.998": life_cut_defaults(gamma="0.998"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-ent0.005": life_cut_defaults(ent_coef="0.005"),
    "adam-norm-4x16-cap1-kl0.02-vf5-life": life_cut_defaults(minibatches=16),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-lam0.9": life_cut_defaults(lam="0.9"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-lam0.98": life_cut_defaults(lam="0.98"),
    "adam-raw-4x8-cap1-kl0.02-vf5-life-ent0.001": life_cut_defaults(normalize=False, ent_coef="0.001"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-pen0.1": life_cut_defaults(life_penalty="0.1"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-pen0.25": life_cut_defaults(life_penalty="0.25"),   # = "defaults"
    "adam-norm-4x8-cap1-kl0.02-vf5-life-pen0.5": life_cut_defaults(life_penalty="0.5"),
    "adam-norm-4x8-cap1-kl0.02-vf5-life-pen1": life_cut_defaults(life_penalty="1.0"),
    "adam-raw-4x8": options("adam", False, 4, 8, "2e-4"),
    "ppo-clip0.2": options("adam", True, 4, 8, "2e-4", clip="0.2"),
    "ppo-clip0.2-vf5": options("adam", True, 4, 8, "2e-4", clip="0.2", vf_coef="5.0"),
}
MILESTONES = (50_000, 100_000, 200_000)
RANDOM_PLAY = 176   # mean raw score of random play on Airstriker (../shared/FACTS.md, measured on this machine type)
# A well-known PyTorch PPO on the same env chain and size (8 x 512, 4 epochs x 8 minibatches, lr 2e-4, clip 0.2),
# one seed, measured on this machine type (issue 8; ../shared/FACTS.md): steps -> mean return of 100 episodes.
PPO_REFERENCE = {50_000: 226, 100_000: 315, 150_000: 382, 200_000: 446}


def run_dir(out: str, config: str, seed: int) -> str:
    return os.path.join(out, "runs", f"{config}-s{seed}")


def read_progress(path: str) -> list:
    """Rows of a run's progress.csv as dicts of floats (an empty or unreadable cell is NaN)."""
    csv_path = os.path.join(path, "progress.csv")
    if not os.path.exists(csv_path):
        return []
    rows = []
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append({key: _number(value) for key, value in row.items()})
    return rows


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def train_command(config: str, seed: int, steps: int, out: str, num_envs: int, nsteps: int) -> list:
    """The agent.py command that starts this run, or resumes it when it has a checkpoint."""
    path = run_dir(out, config, seed)
    common = ["--total-timesteps", str(steps), "--no-progress"]
    if os.path.exists(os.path.join(path, "checkpoints", "latest")):
        return [sys.executable, os.path.join(REPO, "agent.py"), "--resume", path, *common]
    return [sys.executable, os.path.join(REPO, "agent.py"), *CONFIGS[config], "--num-envs", str(num_envs),
            "--nsteps", str(nsteps), "--seed", str(seed), "--log-interval", "1", "--keep-checkpoints", "2",
            "--run-name", os.path.basename(path), "--runs-dir", os.path.join(out, "runs"),
            "--models-dir", os.path.join(out, "models"), *common]


def finished(config: str, seed: int, steps: int, out: str, num_envs: int, nsteps: int) -> bool:
    rows = read_progress(run_dir(out, config, seed))
    updates = steps // (num_envs * nsteps)
    return bool(rows) and rows[-1]["nupdates"] >= updates


def run_all(jobs: list, out: str, parallel: int, steps: int, num_envs: int, nsteps: int) -> int:
    """Run the (config, seed) jobs not finished yet, `parallel` at a time. -> number of failed runs."""
    pending = [job for job in jobs if not finished(*job, steps, out, num_envs, nsteps)]
    running, failed = [], 0
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    while pending or running:
        while pending and len(running) < parallel:
            config, seed = pending.pop(0)
            log = open(os.path.join(out, "logs", f"{config}-s{seed}.log"), "a")
            command = train_command(config, seed, steps, out, num_envs, nsteps)
            print(f"start {config} seed {seed}: {' '.join(command[1:])}", flush=True)
            running.append(((config, seed), subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(2)
        for item in list(running):
            (config, seed), proc, log = item
            if proc.poll() is not None:
                running.remove(item)
                log.close()
                print(f"done  {config} seed {seed}: exit {proc.returncode}", flush=True)
                failed += proc.returncode != 0
    return failed


# ----------------------------------------------------------------------------- the report

def value_at(rows: list, column: str, steps: int) -> float:
    """The column's value in the last row logged at or before `steps`; NaN when the run has not reached the last
    update boundary at or before `steps` (rows logged every update: one update is the first row's steps)."""
    earlier = [row for row in rows if row["total_timesteps"] <= steps]
    batch = rows[0]["total_timesteps"] / rows[0]["nupdates"] if rows else 0
    if not earlier or rows[-1]["total_timesteps"] <= steps - batch:
        return math.nan
    return earlier[-1][column]


def summarise(out: str, configs: list, seeds: list, milestones=MILESTONES) -> dict:
    """{config: {'seeds': {seed: curves}, 'milestones': {steps: {median, min, max}}, 'wall_s': median}}."""
    summary = {}
    for config in configs:
        per_seed = {}
        for seed in seeds:
            rows = read_progress(run_dir(out, config, seed))
            if rows:
                per_seed[seed] = {column: [row[column] for row in rows] for column in
                                  ("total_timesteps", "ep_return_mean", "policy_entropy", "explained_variance",
                                   "time_elapsed", "fps")}
        if not per_seed:
            continue
        table = {}
        for steps in milestones:
            values = [value_at(read_progress(run_dir(out, config, seed)), "ep_return_mean", steps) for seed in per_seed]
            values = [v for v in values if not math.isnan(v)]
            table[steps] = ({"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values)),
                             "seeds": len(values)} if values else None)
        walls = [curves["time_elapsed"][-1] for curves in per_seed.values()]
        summary[config] = {"seeds": per_seed, "milestones": table, "wall_s": float(np.median(walls)),
                           "steps_done": min(curves["total_timesteps"][-1] for curves in per_seed.values())}
    return summary


def markdown_table(summary: dict, milestones=MILESTONES) -> str:
    head = "| configuration | seeds | " + " | ".join(f"return @{_steps_label(m)}" for m in milestones) + \
           " | wall time (median) |"
    lines = [head, "|" + " --- |" * (len(milestones) + 3)]
    for config, item in summary.items():
        cells = []
        for steps in milestones:
            cell = item["milestones"].get(steps)
            cells.append("-" if cell is None else f"{cell['median']:.0f} [{cell['min']:.0f} - {cell['max']:.0f}]")
        wall = f"{item['wall_s'] / 60:.0f} min"
        lines.append(f"| {config} | {len(item['seeds'])} | " + " | ".join(cells) + f" | {wall} |")
    return "\n".join(lines)


def _steps_label(steps: int) -> str:
    return f"{steps // 1000}k" if steps % 1000 == 0 else f"{steps:,}"


def plot(summary: dict, path: str) -> None:
    """Return, entropy and explained variance against steps: median line and min-max band per config."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for config, item in summary.items():
        for ax, column in zip(axes, ("ep_return_mean", "policy_entropy", "explained_variance")):
            grid, band = _aligned(item["seeds"], column)
            if grid is None:
                continue
            line, = ax.plot(grid, np.nanmedian(band, axis=0), label=config)
            ax.fill_between(grid, np.nanmin(band, axis=0), np.nanmax(band, axis=0), color=line.get_color(),
                            alpha=0.2)
    axes[0].axhline(RANDOM_PLAY, color="gray", linestyle=":", label="random play")
    axes[0].plot(list(PPO_REFERENCE), list(PPO_REFERENCE.values()), "k--", marker="o",
                 label="PyTorch PPO (issue 8, one seed)")
    for ax, title in zip(axes, ("mean return, last 100 episodes", "policy entropy", "explained variance")):
        ax.set_title(title)
        ax.set_xlabel("agent steps")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda steps, _: f"{steps / 1000:.0f}k"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    temporary = path + ".part.png"
    fig.savefig(temporary, dpi=90)
    os.replace(temporary, path)
    plt.close(fig)


def _aligned(per_seed: dict, column: str):
    """Seeds' curves on the shortest common step grid: (steps [n], values [seeds, n]) or (None, None)."""
    length = min(len(curves["total_timesteps"]) for curves in per_seed.values())
    if length == 0:
        return None, None
    grid = np.asarray(next(iter(per_seed.values()))["total_timesteps"][:length])
    return grid, np.array([curves[column][:length] for curves in per_seed.values()], dtype=float)


def report(out: str, configs: list, seeds: list, milestones=MILESTONES) -> dict:
    summary = summarise(out, configs, seeds, milestones)
    if not summary:
        print(f"no runs in {out} yet", flush=True)
        return summary
    with open(os.path.join(out, "results.json.part"), "w") as fh:
        json.dump({"milestones": milestones, "random_play": RANDOM_PLAY, "ppo_reference": PPO_REFERENCE,
                   "configs": {name: CONFIGS[name] for name in summary}, "summary": summary}, fh, indent=1)
    os.replace(os.path.join(out, "results.json.part"), os.path.join(out, "results.json"))
    table = markdown_table(summary, milestones)
    with open(os.path.join(out, "results.md.part"), "w") as fh:
        fh.write(table + "\n")
    os.replace(os.path.join(out, "results.md.part"), os.path.join(out, "results.md"))
    plot(summary, os.path.join(out, "learning.png"))
    print(table, flush=True)
    return summary


# ----------------------------------------------------------------------------- command line

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="configurations: " + ", ".join(CONFIGS) + "\n\n" +
                                            __doc__[__doc__.index("Examples:"):])
    parser.add_argument("--configs", default="defaults", help="comma-separated configuration names (default: defaults)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. K-1 per configuration (default: 3)")
    parser.add_argument("--seed-list", default="", metavar="S,S,...",
                        help="these seeds instead of 0 .. K-1, e.g. '1' for a one-seed screen on seed 1")
    parser.add_argument("--steps", type=int, default=200_000, help="agent steps per run (default: 200000)")
    parser.add_argument("--num-envs", type=int, default=8, help="envs per run (default: 8)")
    parser.add_argument("--nsteps", type=int, default=512, help="steps per env per update (default: 512)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (default: 1)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="results folder (default: bench/learning-results)")
    parser.add_argument("--milestones", default=",".join(str(m) for m in MILESTONES),
                        help="steps at which the table reads the curves (default: 50000,100000,200000)")
    parser.add_argument("--background", action="store_true", help="detach, log to OUT/benchmark.log, return at once")
    parser.add_argument("--report-only", action="store_true", help="train nothing: table and plot from OUT")
    args = parser.parse_args(argv)
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}: choose from {', '.join(CONFIGS)}")
    for name in ("seeds", "steps", "num_envs", "nsteps", "jobs"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.steps < args.num_envs * args.nsteps:
        parser.error(f"--steps {args.steps} is less than one update ({args.num_envs} x {args.nsteps})")
    try:
        args.milestones = tuple(int(m) for m in args.milestones.split(","))
    except ValueError:
        parser.error(f"--milestones must be comma-separated step counts, got {args.milestones!r}")
    try:
        args.seed_values = sorted({int(seed) for seed in args.seed_list.split(",") if seed.strip()}) or \
            list(range(args.seeds))   # a seed named twice runs once: two processes must not share a run folder
    except ValueError:
        parser.error(f"--seed-list must be comma-separated seeds, got {args.seed_list!r}")
    if min(args.seed_values) < 0:
        parser.error("--seed-list seeds must be 0 or more")
    args.config_names = configs
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.background:
        argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--background"]
        log_path = os.path.join(args.out, "benchmark.log")
        with open(log_path, "a") as log:
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"benchmark running in the background (pid {proc.pid}); log {log_path}. Run the same command again "
              "after a stop: finished runs are kept and the others resume from their checkpoints.")
        return 0
    seeds = args.seed_values
    failed = 0
    if not args.report_only:
        jobs = [(config, seed) for seed in seeds for config in args.config_names]
        failed = run_all(jobs, args.out, args.jobs, args.steps, args.num_envs, args.nsteps)
    report(args.out, args.config_names, seeds, args.milestones)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
