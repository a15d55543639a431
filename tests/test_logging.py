"""logger.RunLogger: progress.csv and the TensorBoard events hold exactly what was logged; resume; progress bar."""
import csv
import glob
import io
import math
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow.compat.v1")
from logger import TAGS, RunLogger  # noqa: E402


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
    """-> (header, rows as column -> float)."""
    with open(os.path.join(run_dir, "progress.csv"), newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, [{k: float(v) for k, v in row.items()} for row in reader]


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
