"""The training table, printed as the 2018 scripts printed it and kept as CSV and TensorBoard events.

Scalars are namespaced as TensorBoard groups them (`charts/episode_return`, `losses/value_loss`, ...);
`tensorboard --logdir runs` shows every run side by side. A progress bar (tqdm) runs only on a terminal.
"""
import contextlib
import csv
import math
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

from checkpoint import as_number, read_table
from errors import CheckpointError
from outputs import replaced_on_success

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
    "approx_kl": "losses/approx_kl",
    "clip_fraction": "losses/clip_fraction",
    "eval_return_mean": "eval/return_mean",
    "eval_progress_mean": "eval/progress_mean",
    "eval_seconds": "eval/seconds",
}


def is_missing(value) -> bool:
    """No number yet: None or NaN (ep_return_mean before the first episode ends)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_table(row: dict) -> str:
    """The baselines-style box: one '| key | value |' line per column; '-' where there is no number yet."""
    def fmt(value):
        if is_missing(value):
            return "-"
        if isinstance(value, float):
            return f"{value:<8.3g}"
        return str(value)
    keys = [k for k in row]
    key_width = max(len(k) for k in keys)
    val_width = max(len(fmt(row[k])) for k in keys)
    dashes = "-" * (key_width + val_width + 7)
    lines = [dashes] + [f"| {k:<{key_width}} | {fmt(row[k]):<{val_width}} |" for k in keys] + [dashes]
    return "\n".join(lines)


def read_progress_table(csv_path: str) -> tuple:
    """progress.csv -> (header, rows as dicts of strings); (None, []) when there is none yet or it is empty.

    Raises CheckpointError for a file that is not a training table of this project (unreadable, no
    total_timesteps column, a total_timesteps that is not a number): agent.py checks it before a --resume
    changes any file of the run.
    """
    if not os.path.lexists(csv_path) or (os.path.isfile(csv_path) and os.path.getsize(csv_path) == 0):
        return None, []
    problem = None
    try:
        fieldnames, rows = read_table(csv_path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        problem = str(error)
    else:
        if "total_timesteps" not in fieldnames:
            problem = "no total_timesteps column"
        else:
            problem = next((f"row {n}: total_timesteps {row['total_timesteps']!r} is not a number"
                            for n, row in enumerate(rows, 1) if math.isnan(as_number(row["total_timesteps"] or 0))),
                           None)
    if problem:
        raise CheckpointError(f"{csv_path} is not a training table of this project ({problem}): repair it, or move "
                              "it away to start a new table, then --resume again")
    return fieldnames, rows


class EventFile:
    """A TensorBoard event file written in this thread: each write reaches the file (and its error, such as a full
    disk, is raised here) before the call returns. TF's FileWriter writes from a thread of its own, which on a
    full disk prints a traceback of that thread and fails a later call."""

    def __init__(self, run_dir: str, suffix: str):
        import socket

        from tensorboard.summary.writer.record_writer import RecordWriter
        self.path = os.path.join(run_dir, f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}{suffix}")
        self.records = RecordWriter(open(self.path, "wb"))
        self.write(tf.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def write(self, event: "tf.Event") -> None:
        self.records.write(event.SerializeToString())
        self.records.flush()

    def add_summary(self, summary: "tf.Summary", step: int) -> None:
        self.write(tf.Event(wall_time=time.time(), step=int(step), summary=summary))

    def add_session_log(self, session_log: "tf.SessionLog", step: int) -> None:
        self.write(tf.Event(wall_time=time.time(), step=int(step), session_log=session_log))

    def close(self) -> None:
        self.records.close()


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
        self.fieldnames, self.rows = self._rows_until(start_timesteps)   # header (None: no table yet), rows
        # a unique, chronologically sorting suffix: a resume within the same second must not overwrite the
        # previous file (the name's time has 1 s resolution), and TensorBoard reads files in name order
        with self.events_written():
            self.writer = EventFile(run_dir, f".{time.time_ns()}")
            if start_timesteps:
                # TensorBoard discards events of earlier files with a larger step than a START session log
                self.writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), start_timesteps)
        self.bar = None
        if progress and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm
            # smoothing=0: the rate (and the time left) is the mean since the start, training pauses included
            self.bar = tqdm(total=total_timesteps, initial=start_timesteps, unit="step", unit_scale=True,
                            dynamic_ncols=True, file=self.stream, leave=False, smoothing=0)

    def print(self, text: str) -> None:
        """Print above the progress bar (or plainly when there is none)."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def advance(self, timesteps: int, fps: float = None, mean_return: float = None) -> None:
        """Move the bar on by `timesteps` agent steps (called as they are collected); with `fps`, show the
        speed and the mean return of the last update ('-' before the first episode ends)."""
        if self.bar is None:
            return
        self.bar.update(timesteps)
        if fps is not None:
            self.bar.set_postfix(fps=int(fps), ret="-" if is_missing(mean_return) else f"{mean_return:.4g}")

    def log_row(self, row: dict, episode_returns=(), episode_lengths=(), figures=None) -> None:
        """row: table column -> number; returns/lengths of the episodes in the window, for histograms;
        figures: more columns for progress.csv and TensorBoard (named as their tags, e.g. 'levels/<level>/
        return_mean') that the printed table leaves out."""
        self.print(format_table(row))
        row = dict(row, **(figures or {}))
        self._append_csv(row)
        step = int(row["total_timesteps"])
        values = [tf.Summary.Value(tag=TAGS.get(k, k), simple_value=float(v)) for k, v in row.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)]
        with self.events_written():
            self.writer.add_summary(tf.Summary(value=values), step)
            if len(episode_returns):
                self.writer.add_summary(histogram_summary("episodes/return", episode_returns), step)
                self.writer.add_summary(histogram_summary("episodes/length", episode_lengths), step)

    def _rows_until(self, timesteps: int) -> tuple:
        """(header, rows) of progress.csv without rows past `timesteps`, written back when some were dropped."""
        fieldnames, rows = read_progress_table(self.csv_path)
        kept = [r for r in rows if float(r["total_timesteps"] or 0) <= timesteps]
        if len(kept) != len(rows):
            self._write_csv(fieldnames, kept)
        return fieldnames, kept

    def warn(self, tag: str, text: str, step: int) -> None:
        """A warning line, printed and kept in TensorBoard's text tab under `tag`."""
        self.print(text)
        metadata = tf.SummaryMetadata(plugin_data=tf.SummaryMetadata.PluginData(plugin_name="text"))
        value = tf.Summary.Value(tag=tag, metadata=metadata, tensor=tf.make_tensor_proto(text))
        with self.events_written():
            self.writer.add_summary(tf.Summary(value=[value]), step)

    def animation(self, tag: str, gif_path: str, step: int) -> None:
        """An animated GIF file into TensorBoard's images tab (it plays there as it does in a browser)."""
        from PIL import Image
        with open(gif_path, "rb") as fh:
            data = fh.read()
        with Image.open(gif_path) as gif:
            width, height = gif.size
        image = tf.Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
        with self.events_written():
            self.writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, image=image)]), step)

    @contextlib.contextmanager
    def events_written(self):
        """Turn a failed write of the TensorBoard events (a full disk) into one CheckpointError line."""
        try:
            yield
        except OSError as error:
            raise CheckpointError(f"could not write the TensorBoard events in {self.run_dir!r} "
                                  f"({error.strerror or error}): the run stopped; its last checkpoint is intact: "
                                  "free disk space, then continue it with --resume") from None

    def _append_csv(self, row: dict) -> None:
        if self.fieldnames is None:
            self.fieldnames = list(row)
        # columns first seen now (a level's first episode, evaluations turned on by a resume): earlier rows
        # get empty cells, as the whole table is written again
        self.fieldnames += [name for name in row if name not in self.fieldnames]
        self.rows.append({k: "" if is_missing(v) else v for k, v in row.items()})   # no number: empty cell
        self._write_csv(self.fieldnames, self.rows)

    def _write_csv(self, fieldnames: list, rows: list) -> None:
        """progress.csv written whole under a temporary name, then renamed into place: a full disk or a kill
        leaves the previous table, never a half row that a later --resume could not read."""
        advice = "the run stopped; its last checkpoint is intact: free disk space, then continue it with --resume"
        with replaced_on_success(self.csv_path, "the training table", CheckpointError, advice) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        with contextlib.suppress(OSError):   # every event was flushed as it was written: nothing is lost here
            self.writer.close()


def count_of(number: int, noun: str) -> str:
    """(1, 'update') -> '1 update', (26624, 'step') -> '26,624 steps'."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def format_duration(seconds: float) -> str:
    """2.25 -> '2.2 s', 45 -> '45 s', 750 -> '12.5 min', 30000 -> '8.3 h', 300000 -> '3.5 days'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class TimeEstimate:
    """Says early how long training will take, so that a first update of minutes does not look hung.

    Fed the agent steps as they are collected (steps_done) and the length of each update (update_done), it
    says two lines through say(line): after 2% of the first update (the first vector step left out: it holds
    TensorFlow's warm-up), the time to collect an update and so a lower bound for the run; when that update
    ends, the time of an update, training included, and of the run.
    """

    def __init__(self, batch_size: int, updates: int, say, resumed: bool = False, clock=time.monotonic):
        self.batch_size, self.updates, self.say, self.clock = batch_size, updates, say, clock
        self.run = "the rest of the run" if resumed else "the whole run"
        self.started = None          # clock when the first vector step was done
        self.steps = 0               # agent steps collected since then
        self.sampling_said = self.update_said = False

    def steps_done(self, steps: int) -> None:
        """`steps` agent steps (one vector-env step) were just collected."""
        if self.sampling_said:
            return
        now = self.clock()
        if self.started is None:
            self.started = now
            return
        self.steps += steps
        if self.steps < max(0.02 * self.batch_size, 2 * steps) or now <= self.started:
            return
        collect = self.batch_size * (now - self.started) / self.steps     # seconds to collect one update
        self.say(f"estimate from the first {count_of(self.steps, 'step')}: about {format_duration(collect)} to "
                 f"collect each update's {count_of(self.batch_size, 'step')}, so at least "
                 f"{format_duration(collect * self.updates)} for {self.run} ({count_of(self.updates, 'update')}); "
                 "training adds to it, measured when this update ends")
        self.sampling_said = True

    def update_done(self, seconds: float) -> None:
        """An update (collecting and training) took `seconds`; only the first one is reported, and only when
        more follow."""
        if self.update_said:
            return
        self.sampling_said = self.update_said = True
        if self.updates > 1:
            self.say(f"about {format_duration(seconds)} per update, about {format_duration(seconds * self.updates)} "
                     f"for {self.run} ({count_of(self.updates, 'update')}): an estimate from the first update")
