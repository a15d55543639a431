"""logger.RunLogger: progress.csv and the TensorBoard events hold exactly what was logged; resume; progress bar."""
import csv
import glob
import io
import math
import os
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow.compat.v1")
from logger import TAGS, RunLogger, TimeEstimate, format_table  # noqa: E402


def table_row(update: int, return_mean=None) -> dict:
    """A row as model.learn logs it, every column of logger.TAGS, numbers that differ per update."""
    return {"nupdates": update, "total_timesteps": 100 * update, "fps": 40 + update,
            "policy_loss": -0.01 * update, "policy_entropy": 1.9 - 0.1 * update, "value_loss": 0.3 / update,
            "explained_variance": 0.2 * update - 0.5, "time_elapsed": 1.5 * update,
            "ep_return_mean": float("nan") if return_mean is None else return_mean,
            "ep_length_mean": float("nan") if return_mean is None else 20.0 + update,
            "learning_rate": 2e-4, "worker_restarts": 0}


# (row, episode returns [n], episode lengths [n]) as three updates log them; no episode ended in the first
LOGGED = [
    (table_row(1), [], []),
    (table_row(2, 12.5), [10.0, 15.0], [20, 25]),
    (table_row(3, 30.25), [10.0, 15.0, 40.0, 56.0], [20, 25, 31, 7]),
]


def log(run_dir, logged, start_timesteps=0) -> str:
    """Log `logged` rows with a fresh RunLogger writing to a StringIO; returns what it printed."""
    stream = io.StringIO()
    logger = RunLogger(str(run_dir), total_timesteps=1000, start_timesteps=start_timesteps, stream=stream)
    for row, returns, lengths in logged:
        logger.log_row(row, returns, lengths)
    logger.close()
    return stream.getvalue()


def read_csv(run_dir) -> tuple:
    """-> (header, rows as column -> float; an empty cell, no number yet, as NaN)."""
    with open(os.path.join(run_dir, "progress.csv"), newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in reader]


def read_events(run_dir) -> tuple:
    """Every events file of run_dir, read as TensorBoard reads them: in name order, and a START session log at
    step S discards what was read before with a step > S (work lost to a kill and redone after a resume).
    -> (scalars {(step, tag): value}, histograms {(step, tag): HistogramProto}, [steps of START logs])."""
    scalars, histograms, starts = {}, {}, []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            if event.HasField("session_log") and event.session_log.status == tf.SessionLog.START:
                starts.append(event.step)
                for read in (scalars, histograms):
                    for key in [key for key in read if key[0] > event.step]:
                        del read[key]
            for value in event.summary.value:
                key = (event.step, value.tag)
                assert key not in scalars and key not in histograms, f"{key} logged twice"
                if value.HasField("histo"):
                    histograms[key] = value.histo
                else:
                    scalars[key] = value.simple_value
    return scalars, histograms, starts


def same_number(stored: float, logged: float) -> bool:
    """stored equals logged at float32 (TensorBoard's precision); NaN equals NaN."""
    if math.isnan(logged):
        return math.isnan(stored)
    return stored == float(np.float32(logged))


def test_csv_holds_exactly_the_logged_rows(tmp_path):
    printed = log(tmp_path, LOGGED)
    header, rows = read_csv(tmp_path)
    assert header == list(LOGGED[0][0])
    assert len(rows) == len(LOGGED)
    for stored, (logged, _, _) in zip(rows, LOGGED):
        for column, value in logged.items():
            assert stored[column] == value or (math.isnan(value) and math.isnan(stored[column])), column
    assert printed.count("| total_timesteps") == len(LOGGED)      # the table, once per row


def test_events_hold_exactly_the_logged_scalars_and_histograms(tmp_path):
    log(tmp_path, LOGGED)
    scalars, histograms, starts = read_events(tmp_path)
    expected = {(row["total_timesteps"], TAGS[column]): value for row, _, _ in LOGGED for column, value in row.items()}
    assert set(scalars) == set(expected)
    for key, value in expected.items():
        assert same_number(scalars[key], value), key
    assert TAGS["ep_return_mean"] == "charts/episode_return" and TAGS["value_loss"] == "losses/value_loss"

    expected_histograms = {}
    for row, returns, lengths in LOGGED:
        if returns:
            expected_histograms[(row["total_timesteps"], "episodes/return")] = returns
            expected_histograms[(row["total_timesteps"], "episodes/length")] = lengths
    assert set(histograms) == set(expected_histograms)
    for key, values in expected_histograms.items():
        histo = histograms[key]
        assert (histo.num, histo.min, histo.max, histo.sum) == (len(values), min(values), max(values), sum(values))
        assert histo.sum_squares == pytest.approx(sum(v * v for v in values))
        assert sum(histo.bucket) == len(values)
    assert starts == []                                              # a new run: no resume marker


def test_resume_drops_rows_after_the_resume_point_and_appends(tmp_path):
    log(tmp_path, LOGGED)
    # the run was killed after update 3 was logged but resumes from the checkpoint of update 2
    redone = (table_row(3, 99.0), [99.0], [50])
    log(tmp_path, [redone, (table_row(4, 98.0), [98.0], [51])], start_timesteps=200)
    header, rows = read_csv(tmp_path)
    assert header == list(LOGGED[0][0])
    assert [row["total_timesteps"] for row in rows] == [100, 200, 300, 400]
    assert [row["ep_return_mean"] for row in rows[2:]] == [99.0, 98.0]   # the redone row, not the lost one
    with open(tmp_path / "progress.csv") as fh:
        assert fh.read().count("nupdates") == 1                          # one header

    scalars, histograms, starts = read_events(tmp_path)
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 2  # the first run's file is kept
    assert starts == [200]      # TensorBoard drops the first file's steps after 200 when it reads this marker
    expected = {(row["total_timesteps"], TAGS[column]): value
                for row, _, _ in [*LOGGED[:2], redone, (table_row(4, 98.0), None, None)] for column, value in row.items()}
    assert set(scalars) == set(expected)
    assert all(same_number(scalars[key], value) for key, value in expected.items())
    assert scalars[(300, "charts/episode_return")] == 99.0                # the redone update, not the lost one
    assert histograms[(300, "episodes/return")].num == 1


def test_resume_at_the_last_row_keeps_every_row(tmp_path):
    log(tmp_path, LOGGED)
    log(tmp_path, [(table_row(4, 1.0), [], [])], start_timesteps=300)
    assert [row["total_timesteps"] for row in read_csv(tmp_path)[1]] == [100, 200, 300, 400]


class TerminalStream(io.StringIO):
    """A stream that says it is a terminal, as sys.stdout does in a console."""

    def isatty(self):
        return True


def drive(stream, progress=True) -> str:
    """Two updates of 100 steps with a RunLogger on `stream`; returns what was written to it."""
    logger = RunLogger(stream.run_dir, total_timesteps=1000, progress=progress, stream=stream)
    for update in (1, 2):
        logger.advance(100, fps=50.0, mean_return=float(update))
        logger.log_row(table_row(update))
    logger.close()
    return stream.getvalue()


@pytest.mark.parametrize("stream_class, progress, bar_shown", [
    (io.StringIO, True, False),          # a file or a pipe: only the table
    (TerminalStream, True, True),        # a terminal: the bar as well
    (TerminalStream, False, False),      # a terminal with --no-progress
])
def test_progress_bar_only_on_a_terminal(tmp_path, stream_class, progress, bar_shown):
    stream = stream_class()
    stream.run_dir = str(tmp_path)
    written = drive(stream, progress)
    assert written.count("| nupdates") == 2                          # the table is always there
    assert ("200/1.00k" in written) == bar_shown                     # tqdm's "n/total" (unit_scale)
    assert ("\r" in written) == bar_shown


def test_no_number_yet_is_a_dash_in_the_table_and_an_empty_cell_in_the_csv(tmp_path):
    """Before the first episode ends ep_return_mean / ep_length_mean have no value: '-', not 'nan'."""
    printed = log(tmp_path, LOGGED[:2])
    first_table = printed.split("| nupdates")[1]
    assert re.search(r"^\| ep_return_mean\s+\| -\s+\|$", first_table, re.M), first_table
    assert re.search(r"^\| ep_length_mean\s+\| -\s+\|$", first_table, re.M), first_table
    assert "nan" not in printed
    with open(tmp_path / "progress.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["ep_return_mean"] == rows[0]["ep_length_mean"] == ""
    assert float(rows[1]["ep_return_mean"]) == 12.5
    import plot                                                       # the reader of the CSV copes with it
    columns = plot.read_progress(str(tmp_path))
    assert math.isnan(columns["ep_return_mean"][0]) and columns["ep_return_mean"][1] == 12.5
    assert "| 1 " in format_table({"a": 1}) and "| - " in format_table({"a": None})


def test_progress_bar_counts_steps_as_they_come_and_shows_a_dash_without_episodes(tmp_path):
    stream = TerminalStream()
    logger = RunLogger(str(tmp_path), total_timesteps=1000, stream=stream)
    for _ in range(25):                       # one update of 25 vector steps of 4 envs, counted step by step
        logger.advance(4)
    assert logger.bar.n == 100
    logger.advance(0, fps=50.0, mean_return=None)
    logger.bar.refresh()
    logger.close()
    written = stream.getvalue()
    assert "100/1.00k" in written and "ret=-" in written and "nan" not in written


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_estimate_early_in_the_first_update_then_after_it():
    """Batch 1000 (10 envs x 100 steps), 50 updates; 0.1 s per vector step after a slow first one."""
    said, clock = [], FakeClock()
    estimate = TimeEstimate(batch_size=1000, updates=50, say=said.append, clock=clock)
    clock.now = 5.0                           # the first step: TensorFlow's warm-up, left out of the estimate
    estimate.steps_done(10)
    for _ in range(2):                        # 20 steps measured: 2% of the update
        clock.now += 0.1
        estimate.steps_done(10)
    assert said == ["estimate from the first 20 steps: about 10.0 s to collect each update's 1,000 steps, so at "
                    "least 8.3 min for the whole run (50 updates); training adds to it, measured when this "
                    "update ends"]
    for _ in range(50):
        clock.now += 0.1
        estimate.steps_done(10)
    assert len(said) == 1                     # said once
    estimate.update_done(30.0)
    estimate.update_done(25.0)                # only the first update is reported
    assert said[1:] == ["about 30 s per update, about 25.0 min for the whole run (50 updates): an estimate from "
                        "the first update"]


def test_time_estimate_of_a_resumed_run_and_of_a_single_update():
    said, clock = [], FakeClock()
    estimate = TimeEstimate(batch_size=64, updates=1, say=said.append, resumed=True, clock=clock)
    for _ in range(3):
        clock.now += 2.0
        estimate.steps_done(2)
    assert said == ["estimate from the first 4 steps: about 64 s to collect each update's 64 steps, so at least "
                    "64 s for the rest of the run (1 update); training adds to it, measured when this update ends"]
    estimate.update_done(70.0)                # nothing follows the only update: no second line
    assert len(said) == 1
