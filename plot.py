"""Plot training runs side by side: `python plot.py runs/A runs/B -o runs.png` (`--help` for options).

Reads each run folder's progress.csv (see logger.py) and draws the episode return (ep_return_mean) against
total_timesteps, one line per run (and, dashed, the held-out evaluations' eval_return_mean of a run trained
with --eval-every), with panels beside it for the losses and the explained variance. With --levels it draws
instead one run's levels, one line each: the mean return of each level's recent training episodes (and on
Sonic the fraction of the level reached), the columns levels/<level>/... of a run over several levels.

Examples:
    python plot.py runs/NAME                         # one run, to progress.png
    python plot.py runs/A runs/B -o learning.png     # runs side by side, legend = run folder names
    python plot.py runs/NAME --smooth 1              # no smoothing
    python plot.py runs/NAME --levels -o levels.png  # each level of a run over several levels
"""
import argparse
import csv
import os
import sys

import numpy as np

from checkpoint import as_number, read_table
from cli import HelpFormatter, examples_epilog

RETURN_COLUMN = "ep_return_mean"
EVAL_COLUMN = "eval_return_mean"
LEVEL_PREFIX = "levels/"    # levels/<level>/return_mean, levels/<level>/progress_mean (monitor.py)
X_COLUMN = "total_timesteps"
# panel column -> panel title, drawn right of the return panel in a 2 x 2 grid
SIDE_PANELS = {
    "policy_loss": "policy loss",
    "value_loss": "value loss",
    "policy_entropy": "policy entropy",
    "explained_variance": "explained variance",
}


class PlotError(ValueError):
    """A run folder that cannot be plotted; the message says why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Plot episode return and losses of training runs from their "
                                                 "progress.csv.",
                                     formatter_class=HelpFormatter, epilog=examples_epilog(__doc__))
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (runs/<name>), each with a progress.csv")
    parser.add_argument("-o", "--output", default="progress.png", help="the PNG file to write")
    parser.add_argument("--smooth", type=int, default=10,
                        help="moving-average window, in table rows (1: no smoothing)")
    parser.add_argument("--levels", action="store_true",
                        help="draw each level of one run over several levels (its return and, on Sonic, the "
                             "fraction of the level reached) instead of the runs' returns and losses")
    return parser


def read_progress(run_dir: str) -> dict:
    """run_dir/progress.csv -> column name -> [nrows] float64 (empty or non-numeric cells become NaN).

    Raises PlotError when the file is missing, lacks total_timesteps / ep_return_mean, or has under 2 rows.
    """
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.isfile(path):
        raise PlotError(f"{run_dir}: no progress.csv (not a run folder, or the run has not logged a row yet)")
    try:
        fieldnames, rows = read_table(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PlotError(f"{path}: cannot be read as a table ({error}): is it a progress.csv of this project?") from None
    missing = [c for c in (X_COLUMN, RETURN_COLUMN) if c not in fieldnames]
    if missing:
        raise PlotError(f"{path}: no column {', '.join(missing)} (is it a progress.csv of this project?)")
    if not rows:
        raise PlotError(f"{path}: no rows yet (the run has not logged its first update)")
    if len(rows) == 1:
        raise PlotError(f"{path}: one row (update {rows[0].get('nupdates') or '?'}) is too little to plot: plot again "
                        "once the run has logged more (a row every --log-interval updates)")
    columns = {name: np.array([as_number(row.get(name)) for row in rows]) for name in fieldnames}
    if not np.isfinite(columns[X_COLUMN]).any():
        raise PlotError(f"{path}: no row has a number in {X_COLUMN} (is it a progress.csv of this project?)")
    return columns


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average of [n] values over `window` rows, NaN ignored -> [n] float64.

    The first rows average what there is so far; a row whose window holds only NaN stays NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)
    window = max(1, int(window))
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def run_label(run_dir: str) -> str:
    """The legend name of a run: its folder name."""
    return os.path.basename(os.path.normpath(run_dir)) or run_dir


def make_figure(runs: dict, window: int):
    """runs: label -> columns (read_progress) -> a matplotlib Figure: the return panel on the left, the
    SIDE_PANELS in a 2 x 2 grid on the right, one colour per run in every panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure = plt.figure(figsize=(15, 6), layout="constrained")
    grid = figure.add_gridspec(2, 4)
    return_axes = figure.add_subplot(grid[:, :2])
    side_axes = [figure.add_subplot(grid[i // 2, 2 + i % 2]) for i in range(len(SIDE_PANELS))]
    for index, (label, columns) in enumerate(runs.items()):
        colour = f"C{index % 10}"
        steps = columns[X_COLUMN]                                   # [nrows]
        return_axes.plot(steps, columns[RETURN_COLUMN], color=colour, alpha=0.25, linewidth=1)
        return_axes.plot(steps, smooth(columns[RETURN_COLUMN], window), color=colour, linewidth=2, label=label)
        for axes, column in zip(side_axes, SIDE_PANELS):
            if column in columns:
                axes.plot(steps, smooth(columns[column], window), color=colour, linewidth=1.5)
        if EVAL_COLUMN in columns:   # evaluations fill some rows only: drawn through the rows that have one
            evaluated = np.isfinite(columns[EVAL_COLUMN])
            return_axes.plot(steps[evaluated], columns[EVAL_COLUMN][evaluated], color=colour, linestyle="--",
                             marker=".", linewidth=1.5, label=f"{label}: evaluation")
    return_axes.set(title=f"episode return (mean of the last 100 episodes, smoothed over {window} rows)",
                    xlabel="timesteps", ylabel="episode return")
    return_axes.legend(loc="best")
    for axes, title in zip(side_axes, SIDE_PANELS.values()):
        axes.set(title=title, xlabel="timesteps")
    for axes in [return_axes, *side_axes]:
        axes.grid(alpha=0.3)
        axes.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    return figure


def level_columns(columns: dict, figure: str) -> dict:
    """level -> [nrows] float64 of its levels/<level>/<figure> column ('return_mean' or 'progress_mean')."""
    suffix = "/" + figure
    return {name[len(LEVEL_PREFIX):-len(suffix)]: values for name, values in sorted(columns.items())
            if name.startswith(LEVEL_PREFIX) and name.endswith(suffix)}


def make_levels_figure(label: str, columns: dict, window: int):
    """One run's per-level columns -> a Figure: each level's return, and beside it (Sonic) its fraction reached."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("return_mean", "episode return"), ("progress_mean", "fraction of the level reached")]
    panels = [(figure, title) for figure, title in panels if level_columns(columns, figure)]
    figure, axes_row = plt.subplots(1, len(panels), figsize=(7.5 * len(panels) + 2, 6), layout="constrained",
                                    squeeze=False)
    steps = columns[X_COLUMN]                                       # [nrows]
    for axes, (name, title) in zip(axes_row[0], panels):
        for index, (level, values) in enumerate(level_columns(columns, name).items()):
            style = "-" if index < 10 else "--"                     # 13 levels: ten colours, then dashed
            axes.plot(steps, smooth(values, window), color=f"C{index % 10}", linestyle=style, linewidth=1.8,
                      label=level)
        axes.set(title=f"{label}: {title} per level (smoothed over {window} rows)", xlabel="timesteps",
                 ylabel=title)
        axes.grid(alpha=0.3)
        axes.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    axes_row[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return figure


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    return run_command(plot, args, user_errors=(PlotError,))


def plot(args) -> int:
    """Check the options and read every run first; then draw, and write the PNG whole or not at all (a failed
    write leaves an earlier PNG as it was)."""
    from errors import check_number
    from outputs import check_output_file, replaced_on_success
    check_number("--smooth", args.smooth, minimum=1, error=PlotError)
    check_output_file(args.output, "-o", (".png",), PlotError)
    if args.levels and len(args.runs) > 1:
        raise PlotError(f"--levels draws the levels of one run: give one run folder, not {len(args.runs)}")
    runs = {}
    for run_dir in args.runs:
        label = run_label(run_dir)
        runs[label if label not in runs else run_dir] = read_progress(run_dir)
    if args.levels:
        label, columns = next(iter(runs.items()))
        if not level_columns(columns, "return_mean"):
            raise PlotError(f"{args.runs[0]}: no per-level columns (levels/<level>/return_mean): they are logged "
                            "by runs over several levels (--levels A,B,...), once an episode of each has ended")
        figure = make_levels_figure(label, columns, args.smooth)
    else:
        figure = make_figure(runs, args.smooth)
    with replaced_on_success(args.output, "-o", PlotError) as tmp:
        figure.savefig(tmp, dpi=100)
    print(f"wrote {args.output} ({len(runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
