"""The learning benchmark: does a configuration learn, and how fast, on the embedded default game?

Trains each named configuration for a step budget over several seeds (each run is `agent.py` in its own
process, so a stopped benchmark resumes every run from its last checkpoint), then writes, per seed and as the
median over seeds: the mean return of the last 100 episodes, the policy entropy and the explained variance
against agent steps, and the wall time. Outputs, in --out (default bench/learning-results/):

    runs/<config>-s<seed>/     the runs themselves (progress.csv, checkpoints)
    results.json               every curve, and the milestones table
    results.md                 the table: median [min - max] return at each milestone, wall time
    learning.png               one band (min-max over seeds) and median line per configuration

The suite (issue 22: docs/suite.md): one configuration over Airstriker and three ALE games, three seeds each,
against random play (measured through the project's chain) and a reference (bench/peer/: Stable-Baselines3's PPO
with rl-baselines3-zoo's Atari settings, in its own environment). Outputs, in --out (default bench/suite-results/):

    random_play.json           random play of each game (whole games, the game's own score) and its command
    screen.json, screen.md     the reference's one-seed screen of the candidate games, and the games it chose
    runs/<config>-<game>-s<seed>/   the runs
    suite-<config>.json/.md/.png    per game: median [min - max] at 100k and 300k, random play, the reference,
                                    the normalised score; the plot: returns and entropy / ln(actions) per game

Examples:
    python bench/learning.py --configs defaults,2018 --seeds 3 --steps 200000 --background
    python bench/learning.py --configs defaults --seeds 1 --steps 100000      # a one-seed screen
    python bench/learning.py --configs defaults --seed-list 3,4 --steps 200000 # seeds 3 and 4 only
    python bench/learning.py --report-only                                     # redraw from what is there
    python bench/learning.py --screen                          # after the reference's seed-0 runs: choose games
    python bench/learning.py --suite --configs defaults --background           # 12 runs of 300k, one at a time
    python bench/learning.py --suite --configs defaults --report-only          # the suite's table and plot so far
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from checkpoint import as_number, read_table  # noqa: E402  (the project's one reader of progress.csv)

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
    return [{key: as_number(value) for key, value in row.items()} for row in read_table(csv_path)[1]]


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


# ----------------------------------------------------------------------------- the suite (issue 22)
# One configuration over Airstriker and three ALE games, three seeds each, against random play and a reference
# (Stable-Baselines3's PPO with rl-baselines3-zoo's Atari settings: bench/peer/), 100k and 300k steps.

SUITE_OUT = os.path.join(REPO, "bench", "suite-results")
PEER_OUT = os.path.join(REPO, "bench", "peer", "results")
AIRSTRIKER = "Airstriker-Genesis-v0"
# the ALE games the suite may take (issue 22), in the order the reference's screen tries them
SUITE_CANDIDATES = ("ALE/Seaquest-v5", "ALE/Qbert-v5", "ALE/MsPacman-v5", "ALE/SpaceInvaders-v5", "ALE/BeamRider-v5",
                    "ALE/Freeway-v5", "ALE/Enduro-v5", "ALE/Pong-v5")
SUITE_ALE_GAMES = 3
SUITE_STEPS = 300_000
SUITE_MILESTONES = (100_000, 300_000)
RANDOM_EPISODES = 100
# "clearly beats random play": the reference's mean of its last 100 games at 300k steps is above random play's
# mean by at least half of random play's own size (its |mean|, or its standard deviation where that is larger)
CLEAR_GAIN = 0.5


def game_label(game: str) -> str:
    """'ALE/Seaquest-v5' -> 'Seaquest'; 'Airstriker-Genesis-v0' -> 'Airstriker'."""
    if game.startswith("ALE/"):
        return game[len("ALE/"):].rsplit("-v", 1)[0]
    return game.split("-", 1)[0]


def suite_run_dir(out: str, config: str, game: str, seed: int) -> str:
    return os.path.join(out, "runs", f"{config}-{game_label(game)}-s{seed}")


def suite_command(config: str, game: str, seed: int, steps: int, out: str, num_envs: int, nsteps: int) -> list:
    """The agent.py command that starts this suite run, or resumes it when it has a checkpoint."""
    path = suite_run_dir(out, config, game, seed)
    common = ["--total-timesteps", str(steps), "--no-progress"]
    if os.path.exists(os.path.join(path, "checkpoints", "latest")):
        return [sys.executable, os.path.join(REPO, "agent.py"), "--resume", path, *common]
    return [sys.executable, os.path.join(REPO, "agent.py"), *CONFIGS[config], "--game", game,
            "--num-envs", str(num_envs), "--nsteps", str(nsteps), "--seed", str(seed), "--log-interval", "1",
            "--keep-checkpoints", "2", "--run-name", os.path.basename(path), "--runs-dir", os.path.join(out, "runs"),
            "--models-dir", os.path.join(out, "models"), *common]


def run_suite(config: str, games: list, seeds: list, steps: int, out: str, num_envs: int, nsteps: int) -> int:
    """Every (game, seed) run not finished yet, one at a time (each uses every core). -> number of failed runs."""
    failed = 0
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    updates = steps // (num_envs * nsteps)
    for seed in seeds:
        for game in games:
            path = suite_run_dir(out, config, game, seed)
            rows = read_progress(path)
            if rows and rows[-1]["nupdates"] >= updates:
                continue
            command = suite_command(config, game, seed, steps, out, num_envs, nsteps)
            print(f"start {os.path.basename(path)}: {' '.join(command[1:])}", flush=True)
            with open(os.path.join(out, "logs", os.path.basename(path) + ".log"), "a") as log:
                code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
            print(f"done  {os.path.basename(path)}: exit {code}", flush=True)
            failed += code != 0
    return failed


# --- random play: a random-action agent through the project's own chain (env.make_level)

def measure_random_play(game: str, episodes: int = RANDOM_EPISODES, seed: int = 0) -> dict:
    """The game's own score of `episodes` whole games of uniformly random actions, one env seeded `seed` at its
    first reset (later resets go on from there), the action sampler seeded `seed`."""
    import env as envs
    environment = envs.make_level(game, envs.default_levels(game)[0])
    environment.action_space.seed(seed)
    scores, lengths = [], []
    environment.reset(seed=seed)
    while len(scores) < episodes:
        _, _, terminated, truncated, info = environment.step(environment.action_space.sample())
        if terminated or truncated:
            scores.append(float(info["episode"]["r"]))
            lengths.append(int(info["episode"]["l"]))
            environment.reset()
    actions = int(environment.action_space.n)
    environment.close()
    return {"episodes": episodes, "seed": seed, "actions": actions, **spread(scores),
            "sd": float(np.std(scores)), "mean_length": float(np.mean(lengths)), "scores": scores}


def load_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def save_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(path + ".part", path)


def random_play(games: list, out: str, episodes: int, command: str) -> dict:
    """Random play of each game, measured once and kept in OUT/random_play.json (with the command that made it)."""
    path = os.path.join(out, "random_play.json")
    kept = load_json(path)
    for game in games:
        if kept.get(game, {}).get("episodes", 0) >= episodes:
            continue
        started = time.time()
        kept[game] = {**measure_random_play(game, episodes), "command": command}
        kept[game]["wall_s"] = round(time.time() - started, 1)
        save_json(path, kept)
        print(f"random play {game}: {kept[game]['mean']:.1f} (sd {kept[game]['sd']:.1f}, {episodes} games, "
              f"{kept[game]['actions']} actions)", flush=True)
    return kept


# --- the reference's results (bench/peer/ppo_reference.py writes them; no torch needed to read them)

def peer_run_dir(peer_out: str, game: str, seed: int) -> str:
    return os.path.join(peer_out, f"{game_label(game)}-s{seed}")


def read_peer_curve(folder: str) -> dict:
    """A reference run's progress.csv as curves {total_timesteps, ep_return_mean, policy_entropy: [float]}, in
    the shape of the project's runs (an empty cell, before the first game ended, is NaN); {} without a file."""
    rows = read_progress(folder)
    if not rows:
        return {}
    return {column: [row.get(column, math.nan) for row in rows]
            for column in ("total_timesteps", "ep_return_mean", "policy_entropy")}


def read_peer_scores(folder: str) -> list:
    """A reference run's episodes.csv: [(total_timesteps, score)] of every whole game, in order."""
    path = os.path.join(folder, "episodes.csv")
    if not os.path.exists(path):
        return []
    return [(int(float(row["total_timesteps"])), float(row["score"])) for row in read_table(path)[1]]


def curve_value_at(curves: dict, column: str, steps: int, batch: int) -> float:
    """`column` in the last row at or before `steps`, NaN where the run stopped before the last update boundary
    at or before `steps` (the rule of value_at, on curves)."""
    rows = [{"total_timesteps": steps_done, column: value}
            for steps_done, value in zip(curves.get("total_timesteps", []), curves.get(column, []))]
    if not rows:
        return math.nan
    rows[0]["nupdates"] = rows[0]["total_timesteps"] / batch
    return value_at(rows, column, steps)


# --- the report's maths

def spread(values: list) -> dict:
    """{'median', 'min', 'max'} of the values that are numbers (NaN ignored); None when there is none."""
    values = [float(v) for v in values if not math.isnan(float(v))]
    if not values:
        return None
    return {"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values)),
            "mean": float(np.mean(values)), "n": len(values)}


def normalised(score: float, random_score: float, reference: float) -> float:
    """(score - random) / (reference - random): random play 0, the reference 1; NaN where either is missing or the
    reference does not differ from random play."""
    if any(v is None or math.isnan(v) for v in (score, random_score, reference)) or reference == random_score:
        return math.nan
    return (score - random_score) / (reference - random_score)


def clearly_beats(reference: float, random: dict) -> float:
    """The reference's gain over random play in units of random play's own size (max(|mean|, sd, 1)); the screen
    calls a game clear when the gain is at least CLEAR_GAIN."""
    return (reference - random["mean"]) / max(abs(random["mean"]), random["sd"], 1.0)


def screen(candidates: list, out: str, peer_out: str, steps: int = SUITE_STEPS) -> dict:
    """The reference's one-seed screen (seed 0) of the candidates: random play, the reference at 100k and at `steps`,
    the gain; chooses the SUITE_ALE_GAMES clear games with the largest gain. Kept in OUT/screen.json and .md."""
    randoms = load_json(os.path.join(out, "random_play.json"))
    rows = {}
    for game in candidates:
        curves = read_peer_curve(peer_run_dir(peer_out, game, 0))
        if not curves or game not in randoms:
            continue
        batch = curves["total_timesteps"][0]
        at = {m: curve_value_at(curves, "ep_return_mean", m, batch) for m in (SUITE_MILESTONES[0], steps)}
        if math.isnan(at[steps]):
            continue                     # still running: screened once it reaches the budget
        gain = clearly_beats(at[steps], randoms[game])
        rows[game] = {"random": randoms[game]["mean"], "random_sd": randoms[game]["sd"],
                      "reference_100k": at[SUITE_MILESTONES[0]], "reference_final": at[steps], "gain": gain,
                      "clear": bool(gain >= CLEAR_GAIN)}
    clear = sorted((game for game in rows if rows[game]["clear"]), key=lambda game: -rows[game]["gain"])
    result = {"steps": steps, "rule": f"gain = (reference - random mean) / max(|random mean|, random sd, 1) >= "
                                      f"{CLEAR_GAIN} at {steps} steps; the {SUITE_ALE_GAMES} largest",
              "games": rows, "chosen": clear[:SUITE_ALE_GAMES]}
    save_json(os.path.join(out, "screen.json"), result)
    lines = ["| game | random play (mean, sd) | reference @100k | reference @300k | gain | clear |",
             "| --- | --- | --- | --- | --- | --- |"]
    for game, row in rows.items():
        lines.append(f"| {game_label(game)} | {row['random']:.1f} ({row['random_sd']:.1f}) | "
                     f"{_cell(row['reference_100k'])} | {_cell(row['reference_final'])} | {row['gain']:.2f} | "
                     f"{'yes' if row['clear'] else 'no'}{' (chosen)' if game in result['chosen'] else ''} |")
    with open(os.path.join(out, "screen.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return result


def suite_games(out: str) -> list:
    """Airstriker and the ALE games the screen chose (OUT/screen.json): Airstriker alone before the screen."""
    chosen = load_json(os.path.join(out, "screen.json")).get("chosen", [])
    return [AIRSTRIKER, *chosen]


def _cell(value: float, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _spread_cell(item: dict, digits: int = 0) -> str:
    if not item:
        return "-"
    if item["n"] == 1:
        return f"{item['median']:.{digits}f} (1 seed)"
    return f"{item['median']:.{digits}f} [{item['min']:.{digits}f} - {item['max']:.{digits}f}]"


def suite_summary(out: str, config: str, games: list, seeds: list, peer_out: str, randoms: dict,
                  milestones=SUITE_MILESTONES, peer_fallback=None) -> dict:
    """Per game: the configuration's and the reference's curves per seed, median [min - max] at each milestone,
    random play and the normalised score of the medians ((config - random) / (reference - random))."""
    summary = {}
    for game in games:
        runs = {seed: read_progress(suite_run_dir(out, config, game, seed)) for seed in seeds}
        runs = {seed: rows for seed, rows in runs.items() if rows}
        peers = {seed: read_peer_curve(peer_run_dir(peer_out, game, seed)) for seed in seeds}
        peers = {seed: curves for seed, curves in peers.items() if curves}
        random_score = randoms.get(game, {}).get("mean", math.nan)
        item = {"random": random_score, "actions": randoms.get(game, {}).get("actions"), "milestones": {},
                "seeds": {seed: {column: [row[column] for row in rows]
                                 for column in ("total_timesteps", "ep_return_mean", "policy_entropy")}
                          for seed, rows in runs.items()},
                "reference_seeds": peers,
                "reference_points": {} if peers else dict((peer_fallback or {}).get(game, {}))}
        for steps in milestones:
            ours = spread([value_at(rows, "ep_return_mean", steps) for rows in runs.values()])
            theirs = spread([curve_value_at(curves, "ep_return_mean", steps, curves["total_timesteps"][0])
                             for curves in peers.values()])
            if theirs is None and peer_fallback and game in peer_fallback and steps in peer_fallback[game]:
                theirs = {"median": float(peer_fallback[game][steps]), "min": float(peer_fallback[game][steps]),
                          "max": float(peer_fallback[game][steps]), "mean": float(peer_fallback[game][steps]), "n": 1}
            item["milestones"][steps] = {
                "config": ours, "reference": theirs,
                "normalised": normalised(ours["median"] if ours else math.nan, random_score,
                                         theirs["median"] if theirs else math.nan)}
        summary[game] = item
    return summary


def suite_table(summary: dict, config: str, milestones=SUITE_MILESTONES) -> str:
    head = ["game", "random play"]
    for steps in milestones:
        label = _steps_label(steps)
        head += [f"{config} @{label}", f"reference @{label}", f"normalised @{label}"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for game, item in summary.items():
        cells = [game_label(game), _cell(item["random"])]
        for steps in milestones:
            mark = item["milestones"][steps]
            cells += [_spread_cell(mark["config"]), _spread_cell(mark["reference"]), _cell(mark["normalised"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def suite_plot(summary: dict, config: str, path: str) -> None:
    """One column per game: the mean return of the last 100 episodes (top) and the policy entropy as a fraction of
    ln(actions) (bottom), median line and min-max band over seeds, the configuration and the reference; random
    play dotted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(2, max(len(summary), 1), figsize=(4.2 * max(len(summary), 1), 6.5), squeeze=False)
    with warnings.catch_warnings():   # before the first episode ends there is no return yet: all-NaN columns
        warnings.filterwarnings("ignore", message="All-NaN slice")
        for column, (game, item) in enumerate(summary.items()):
            top, bottom = axes[0][column], axes[1][column]
            lines = ((config, item["seeds"], "C0"), ("reference (SB3 PPO, zoo)", item["reference_seeds"], "C3"))
            for label, per_seed, colour in lines:
                if not per_seed:
                    continue
                grid, band = _aligned(per_seed, "ep_return_mean")
                top.plot(grid, np.nanmedian(band, axis=0), color=colour, label=f"{label}, {len(per_seed)} seeds")
                top.fill_between(grid, np.nanmin(band, axis=0), np.nanmax(band, axis=0), color=colour, alpha=0.2)
                if item.get("actions"):
                    grid, band = _aligned(per_seed, "policy_entropy")
                    band = band / math.log(item["actions"])
                    bottom.plot(grid, np.nanmedian(band, axis=0), color=colour)
                    bottom.fill_between(grid, np.nanmin(band, axis=0), np.nanmax(band, axis=0), color=colour, alpha=0.2)
            if item.get("reference_points"):
                points = item["reference_points"]
                top.plot(list(points), list(points.values()), "k--", marker="o",
                         label="PyTorch PPO (issue 8, one seed)")
            if not math.isnan(item["random"]):
                top.axhline(item["random"], color="gray", linestyle=":", label="random play")
            top.set_title(f"{game_label(game)}: return (last 100 episodes)", fontsize=10)
            bottom.set_title(f"entropy / ln({item.get('actions') or '?'})", fontsize=10)
            bottom.set_ylim(0, 1.05)
            bottom.axhline(0.3, color="gray", linestyle=":", linewidth=0.8)
            for ax in (top, bottom):
                ax.set_xlabel("agent steps")
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda steps, _: f"{steps / 1000:.0f}k"))
                ax.grid(alpha=0.3)
            top.legend(fontsize=7)
    fig.tight_layout()
    temporary = path + ".part.png"
    fig.savefig(temporary, dpi=80)
    os.replace(temporary, path)
    plt.close(fig)


def _json_ready(value):
    """NaN -> None, dict keys -> str, for a JSON file that other tools read."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def suite_report(out: str, config: str, games: list, seeds: list, peer_out: str, milestones=SUITE_MILESTONES) -> dict:
    """OUT/suite-<config>.json (every curve, the table's numbers), .md (the table) and .png (the plot)."""
    randoms = load_json(os.path.join(out, "random_play.json"))
    # Airstriker has no run of the reference in bench/peer (SB3's Atari wrappers are for ALE): issue 8's PyTorch PPO
    # (one seed, 8 x 512, clip 0.2), as the benchmark above uses it
    fallback = {AIRSTRIKER: PPO_REFERENCE}
    summary = suite_summary(out, config, games, seeds, peer_out, randoms, milestones, peer_fallback=fallback)
    table = suite_table(summary, config, milestones)
    save_json(os.path.join(out, f"suite-{config}.json"),
              _json_ready({"config": config, "options": CONFIGS[config], "seeds": seeds, "milestones": milestones,
                           "games": games, "summary": summary}))
    with open(os.path.join(out, f"suite-{config}.md"), "w") as fh:
        fh.write(table + "\n")
    suite_plot(summary, config, os.path.join(out, f"suite-{config}.png"))
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
    parser.add_argument("--steps", type=int, default=None,
                        help=f"agent steps per run (default: 200000; with --suite {SUITE_STEPS})")
    parser.add_argument("--num-envs", type=int, default=8, help="envs per run (default: 8)")
    parser.add_argument("--nsteps", type=int, default=512, help="steps per env per update (default: 512)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (default: 1)")
    parser.add_argument("--out", default=None,
                        help="results folder (default: bench/learning-results; with --suite, --screen or --random-play "
                             "bench/suite-results)")
    parser.add_argument("--milestones", default=None,
                        help="steps at which the table reads the curves (default: 50000,100000,200000; with --suite "
                             "100000,300000)")
    suite = parser.add_argument_group("the suite (Airstriker and three ALE games against random play and a reference)")
    suite.add_argument("--suite", action="store_true",
                       help="run each configuration over the suite's games (Airstriker and the ALE games the screen "
                            "chose), one run at a time, and report per game against random play and the reference")
    suite.add_argument("--games", default="", metavar="GAME,GAME,...",
                       help="with --suite: these games instead; with --random-play: the games to measure "
                            "(default: the suite's games)")
    suite.add_argument("--random-play", action="store_true",
                       help="measure random play of the games through the project's chain (kept in "
                            "OUT/random_play.json), train nothing")
    suite.add_argument("--episodes", type=int, default=RANDOM_EPISODES,
                       help=f"whole games of random play per game (default: {RANDOM_EPISODES})")
    suite.add_argument("--screen", action="store_true",
                       help="the reference's one-seed screen of the candidate ALE games: choose the suite's games "
                            "(OUT/screen.json, screen.md), train nothing")
    suite.add_argument("--list-games", action="store_true", help="print the suite's games, one a line, and stop")
    suite.add_argument("--peer-out", default=PEER_OUT, help="the reference's results (default: bench/peer/results)")
    parser.add_argument("--background", action="store_true", help="detach, log to OUT/benchmark.log, return at once")
    parser.add_argument("--report-only", action="store_true", help="train nothing: table and plot from OUT")
    args = parser.parse_args(argv)
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}: choose from {', '.join(CONFIGS)}")
    suite_mode = args.suite or args.screen or args.random_play or args.list_games
    if sum((args.suite, args.screen, args.random_play, args.list_games)) > 1:
        parser.error("give one of --suite, --screen, --random-play, --list-games")
    args.steps = args.steps if args.steps is not None else (SUITE_STEPS if suite_mode else 200_000)
    args.out = args.out or (SUITE_OUT if suite_mode else DEFAULT_OUT)
    if args.milestones is None:
        args.milestones = ",".join(str(m) for m in (SUITE_MILESTONES if suite_mode else MILESTONES))
    args.game_list = [game.strip() for game in args.games.split(",") if game.strip()]
    if args.games and not (args.suite or args.random_play):
        parser.error("--games goes with --suite or --random-play")
    if args.episodes <= 0:
        parser.error("--episodes must be positive")
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
    if args.suite or args.screen or args.random_play or args.list_games:
        return suite_main(args)
    seeds = args.seed_values
    failed = 0
    if not args.report_only:
        jobs = [(config, seed) for seed in seeds for config in args.config_names]
        failed = run_all(jobs, args.out, args.jobs, args.steps, args.num_envs, args.nsteps)
    report(args.out, args.config_names, seeds, args.milestones)
    return 1 if failed else 0


def suite_main(args: argparse.Namespace) -> int:
    """--suite, --screen, --random-play, --list-games."""
    command = "python bench/learning.py " + " ".join(a for a in sys.argv[1:] if a != "--background")
    if args.screen:
        screened = [game for game in SUITE_CANDIDATES if read_peer_curve(peer_run_dir(args.peer_out, game, 0))]
        random_play(screened, args.out, args.episodes, command)
        chosen = screen(list(SUITE_CANDIDATES), args.out, args.peer_out, args.steps)["chosen"]
        print(f"chosen: {', '.join(chosen) or 'none yet'}", flush=True)
        return 0
    games = args.game_list or suite_games(args.out)
    if args.list_games:
        print("\n".join(games))
        return 0
    unknown = [game for game in games if game != AIRSTRIKER and not game.startswith("ALE/")]
    if not unknown and any(game.startswith("ALE/") for game in games):
        import env as envs
        unknown = [game for game in games if game.startswith("ALE/") and game not in envs.atari_ids()]
    if unknown:
        print(f"error: --games: {', '.join(unknown)} is neither {AIRSTRIKER} nor an ALE game ale-py ships "
              "(ALE/<Name>-v5, e.g. ALE/Qbert-v5)", file=sys.stderr)
        return 2
    if args.random_play:
        random_play(games, args.out, args.episodes, command)
        return 0
    if len(games) < 1 + SUITE_ALE_GAMES and not args.game_list:
        print(f"error: the suite has {len(games) - 1} ALE games of {SUITE_ALE_GAMES}: run the reference's screen "
              "first (bench/peer/README.md), or name the games with --games", file=sys.stderr)
        return 2
    failed = 0
    for config in args.config_names:
        if not args.report_only:
            random_play(games, args.out, args.episodes, "python bench/learning.py --random-play --games " +
                        ",".join(games) + ("" if args.episodes == RANDOM_EPISODES else f" --episodes {args.episodes}"))
            failed += run_suite(config, games, args.seed_values, args.steps, args.out, args.num_envs, args.nsteps)
        suite_report(args.out, config, games, args.seed_values, args.peer_out, args.milestones)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
