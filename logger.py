"""The training table, printed as the 2018 scripts printed it and kept as CSV and TensorBoard events.

Scalars are namespaced as TensorBoard groups them (`charts/episode_return`, `losses/value_loss`, ...);
`tensorboard --logdir runs` shows every run side by side. A progress bar (tqdm) runs only on a terminal.
"""
import csv
import math
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

# table column -> TensorBoard tag
TAGS = {
    "nupdates": "charts/nupdates",
    "total_timesteps": "charts/total_timesteps",
    "fps": "charts/fps",
    "policy_loss": "losses/policy_loss",
    "policy_entropy": "losses/policy_entropy",
    "value_loss": "losses/value_loss",
    "explained_variance": "losses/explained_variance",
    "time_elapsed": "charts/time_elapsed",
    "ep_return_mean": "charts/episode_return",
    "ep_length_mean": "charts/episode_length",
    "learning_rate": "charts/learning_rate",
    "worker_restarts": "charts/worker_restarts",
}


def format_table(row: dict) -> str:
    """The baselines-style box: one '| key | value |' line per column."""
    def fmt(value):
        if isinstance(value, float):
            return f"{value:<8.3g}" if not math.isnan(value) else "nan"
        return str(value)
    keys = [k for k in row]
    key_width = max(len(k) for k in keys)
    val_width = max(len(fmt(row[k])) for k in keys)
    dashes = "-" * (key_width + val_width + 7)
    lines = [dashes] + [f"| {k:<{key_width}} | {fmt(row[k]):<{val_width}} |" for k in keys] + [dashes]
    return "\n".join(lines)


def histogram_summary(tag: str, values) -> "tf.Summary":
    """A TensorBoard histogram of `values` [n] built with numpy (no graph ops needed)."""
    values = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(values, bins=min(30, max(1, len(values))))
    hist = tf.HistogramProto(min=float(values.min()), max=float(values.max()), num=len(values),
                             sum=float(values.sum()), sum_squares=float((values ** 2).sum()),
                             bucket_limit=[float(e) for e in edges[1:]], bucket=[float(c) for c in counts])
    return tf.Summary(value=[tf.Summary.Value(tag=tag, histo=hist)])


class RunLogger:
    """Writes each table row to stdout, progress.csv and TensorBoard; appends when a run is resumed."""

    def __init__(self, run_dir: str, total_timesteps: int, start_timesteps: int = 0, progress: bool = True,
                 stream=None):
        """start_timesteps > 0 resumes: rows logged after that point (work lost to a kill) are dropped."""
        self.run_dir = run_dir
        self.stream = stream or sys.stdout
        self.csv_path = os.path.join(run_dir, "progress.csv")
        self.fieldnames = self._keep_csv_rows_until(start_timesteps)
        with tf.Graph().as_default():   # FileWriter refuses eager mode (TF2's default when model.py is not imported)
            # a unique, chronologically sorting suffix: a resume within the same second must not overwrite the
            # previous file (the name's time has 1 s resolution), and TensorBoard reads files in name order
            self.writer = tf.summary.FileWriter(run_dir, filename_suffix=f".{time.time_ns()}")
        if start_timesteps:
            # TensorBoard discards events of earlier files with a larger step than a START session log
            self.writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), start_timesteps)
        self.bar = None
        if progress and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm
            self.bar = tqdm(total=total_timesteps, initial=start_timesteps, unit="step", unit_scale=True,
                            dynamic_ncols=True, file=self.stream, leave=False)

    def print(self, text: str) -> None:
        """Print above the progress bar (or plainly when there is none)."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def advance(self, timesteps: int, fps: float, mean_return: float) -> None:
        if self.bar is not None:
            self.bar.update(timesteps)
            self.bar.set_postfix(fps=int(fps), ret=f"{mean_return:.4g}")

    def log_row(self, row: dict, episode_returns=(), episode_lengths=()) -> None:
        """row: table column -> number; returns/lengths of the episodes in the window, for histograms."""
        self.print(format_table(row))
        self._append_csv(row)
        step = int(row["total_timesteps"])
        values = [tf.Summary.Value(tag=TAGS.get(k, k), simple_value=float(v)) for k, v in row.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)]
        self.writer.add_summary(tf.Summary(value=values), step)
        if len(episode_returns):
            self.writer.add_summary(histogram_summary("episodes/return", episode_returns), step)
            self.writer.add_summary(histogram_summary("episodes/length", episode_lengths), step)
        self.writer.flush()

    def _keep_csv_rows_until(self, timesteps: int):
        """Rewrite progress.csv without rows past `timesteps`; returns its header (None if no file)."""
        if not os.path.isfile(self.csv_path) or os.path.getsize(self.csv_path) == 0:
            return None
        with open(self.csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            fieldnames, rows = reader.fieldnames, list(reader)
        kept = [r for r in rows if float(r.get("total_timesteps") or 0) <= timesteps]
        if len(kept) != len(rows):
            tmp = self.csv_path + ".tmp"
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(kept)
            os.replace(tmp, self.csv_path)
        return fieldnames

    def _append_csv(self, row: dict) -> None:
        new_file = self.fieldnames is None
        if new_file:
            self.fieldnames = list(row)
        with open(self.csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fieldnames, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
            fh.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.writer.close()
