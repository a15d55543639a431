"""plot.py: a valid PNG from progress.csv files, the smoothing, and one-line errors."""
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["nupdates", "total_timesteps", "fps", "policy_loss", "policy_entropy", "value_loss",
           "explained_variance", "time_elapsed", "ep_return_mean", "ep_length_mean"]


def fake_run(folder: Path, rows: int = 30, speed: float = 1.0) -> Path:
    """A run folder holding a progress.csv as logger.RunLogger writes it; no episode ends in the first 2 rows."""
    folder.mkdir(parents=True)
    with open(folder / "progress.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for update in range(1, rows + 1):
            episode_return = "" if update <= 2 else 100 * speed * math.log(update) + (update % 3)
            writer.writerow([update, 512 * update, 300, -0.01 * (update % 5), 1.9 - 0.01 * update,
                             0.5 / update, 1 - 1 / update, 2.0 * update, episode_return, 50 + update])
    return folder


def test_writes_a_readable_png_with_one_line_per_run(tmp_path, capsys):
    runs = [fake_run(tmp_path / "runs" / "A2C-fast", speed=2.0), fake_run(tmp_path / "runs" / "A2C-slow")]
    out = tmp_path / "progress.png"
    assert plot.main([str(r) for r in runs] + ["-o", str(out), "--smooth", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 20_000
    from PIL import Image
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1500, 600)     # figsize (15, 6) at 100 dpi
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50         # lines and text, not a blank canvas
    import matplotlib.image
    assert matplotlib.image.imread(str(out)).shape[:2] == (600, 1500)


def test_figure_has_the_return_and_the_side_panels(tmp_path):
    runs = {name: plot.read_progress(str(fake_run(tmp_path / name))) for name in ("A", "B")}
    figure = plot.make_figure(runs, window=3)
    return_axes, *side_axes = figure.axes
    assert [text.get_text() for text in return_axes.get_legend().get_texts()] == ["A", "B"]
    assert [axes.get_title() for axes in side_axes] == list(plot.SIDE_PANELS.values())
    assert all(len(axes.get_lines()) == 2 for axes in side_axes)      # one line per run
    smoothed = [line for line in return_axes.get_lines() if line.get_label() == "A"][0]
    np.testing.assert_allclose(smoothed.get_ydata(), plot.smooth(runs["A"]["ep_return_mean"], 3))
    np.testing.assert_array_equal(smoothed.get_xdata(), 512 * np.arange(1, 31))


def test_smooth_is_a_trailing_mean_that_skips_nan():
    values = np.array([np.nan, 2.0, 4.0, np.nan, 6.0, 8.0])
    np.testing.assert_allclose(plot.smooth(values, 2), [np.nan, 2.0, 3.0, 4.0, 6.0, 7.0])
    np.testing.assert_allclose(plot.smooth(values, 1), values)
    np.testing.assert_allclose(plot.smooth(np.array([np.nan, np.nan, 1.0]), 5), [np.nan, np.nan, 1.0])


def test_read_progress_turns_empty_cells_into_nan(tmp_path):
    columns = plot.read_progress(str(fake_run(tmp_path / "run", rows=4)))
    assert np.isnan(columns["ep_return_mean"][:2]).all() and np.isfinite(columns["ep_return_mean"][2:]).all()
    np.testing.assert_array_equal(columns["total_timesteps"], [512, 1024, 1536, 2048])


@pytest.mark.parametrize("make, message", [
    (lambda folder: folder.mkdir(), "no progress.csv"),
    (lambda folder: (folder.mkdir(), (folder / "progress.csv").write_text("")), "no column total_timesteps"),
    (lambda folder: (folder.mkdir(), (folder / "progress.csv").write_text(",".join(COLUMNS) + "\n")), "no rows"),
    (lambda folder: fake_run(folder, rows=1), "one row (update 1) is too little to plot"),
])
def test_unplottable_folder_is_one_clear_error(tmp_path, capsys, make, message):
    folder = tmp_path / "run"
    make(folder)
    assert plot.main([str(folder), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {folder}") and message in err
    assert not (tmp_path / "out.png").exists()


def test_script_exits_2_for_a_folder_without_progress_csv(tmp_path):
    script = Path(__file__).resolve().parent.parent / "plot.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "-o", str(tmp_path / "out.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path}: no progress.csv (not a run folder, or the run has not " \
                                    "logged a row yet)"
