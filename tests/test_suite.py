"""The learning benchmark's suite (issue 22): its report's maths (median [min - max], the normalised score), reading
the reference's CSV files, the screen's choice of games, and the reference script's bookkeeping. Fast: nothing
trains, and nothing here needs torch (the reference's own environment has it, the project's does not)."""
import csv
import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.path.insert(0, os.path.join(REPO, "bench", "peer"))
import learning  # noqa: E402
import ppo_reference  # noqa: E402

PEER_HEADER = ppo_reference.PROGRESS_COLUMNS


def write_peer(folder, rows, episodes=()):
    """A reference run as bench/peer/ppo_reference.py leaves it: rows (steps, return or '', entropy)."""
    os.makedirs(folder)
    with open(os.path.join(folder, "progress.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PEER_HEADER)
        writer.writeheader()
        for update, (steps, ret, entropy) in enumerate(rows, 1):
            writer.writerow({"nupdates": update, "total_timesteps": steps, "ep_return_mean": ret,
                             "policy_entropy": entropy, "time_elapsed": update})
    with open(os.path.join(folder, "episodes.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ppo_reference.EPISODE_COLUMNS)
        writer.writeheader()
        for steps, score in episodes:
            writer.writerow({"total_timesteps": steps, "score": score, "frames": 100})


def write_project(folder, rows):
    """A project run's progress.csv: rows (steps, return or '', entropy), one per update."""
    os.makedirs(folder)
    with open(os.path.join(folder, "progress.csv"), "w") as fh:
        fh.write("nupdates,total_timesteps,fps,policy_entropy,explained_variance,time_elapsed,ep_return_mean\n")
        for update, (steps, ret, entropy) in enumerate(rows, 1):
            fh.write(f"{update},{steps},100,{entropy},0.5,{update * 10},{ret}\n")


def test_spread_is_the_median_min_and_max_of_the_numbers():
    assert learning.spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "mean": 4.0, "n": 4}
    assert learning.spread([5.0, math.nan, 7.0])["median"] == 6.0     # a seed that has not got that far
    assert learning.spread([math.nan]) is None and learning.spread([]) is None


def test_normalised_score_puts_random_play_at_0_and_the_reference_at_1():
    assert learning.normalised(150.0, 50.0, 250.0) == 0.5
    assert learning.normalised(50.0, 50.0, 250.0) == 0.0 and learning.normalised(250.0, 50.0, 250.0) == 1.0
    assert learning.normalised(450.0, 50.0, 250.0) == 2.0            # twice the reference's gain over random play
    assert learning.normalised(-15.0, -20.0, -10.0) == 0.5           # Pong's scale: both below zero
    assert learning.normalised(40.0, 50.0, 250.0) == -0.05           # below random play
    assert math.isnan(learning.normalised(100.0, 50.0, 50.0))        # a reference no better than random play
    assert math.isnan(learning.normalised(math.nan, 50.0, 250.0))
    assert math.isnan(learning.normalised(100.0, 50.0, math.nan))


def test_reference_csv_reads_in_the_shape_of_the_projects_runs(tmp_path):
    folder = str(tmp_path / "Seaquest-s0")
    write_peer(folder, [(1024, "", 2.89), (2048, 40.0, 2.88), (3072, 60.0, 2.8)], episodes=[(1500, 40.0), (2900, 80.0)])
    curves = learning.read_peer_curve(folder)
    assert curves["total_timesteps"] == [1024.0, 2048.0, 3072.0]
    assert math.isnan(curves["ep_return_mean"][0]) and curves["ep_return_mean"][1:] == [40.0, 60.0]
    assert curves["policy_entropy"] == [2.89, 2.88, 2.8]
    assert learning.read_peer_scores(folder) == [(1500, 40.0), (2900, 80.0)]
    assert learning.read_peer_curve(str(tmp_path / "none")) == {} and learning.read_peer_scores(str(tmp_path)) == []
    # the milestone rule of the project's runs: the last row at or before the steps, NaN if stopped before that
    assert learning.curve_value_at(curves, "ep_return_mean", 3000, 1024) == 40.0
    assert learning.curve_value_at(curves, "ep_return_mean", 3072, 1024) == 60.0
    assert math.isnan(learning.curve_value_at(curves, "ep_return_mean", 5000, 1024))


def test_suite_table_per_game_against_random_play_and_the_reference(tmp_path):
    out, peer_out = str(tmp_path / "suite"), str(tmp_path / "peer")
    game = "ALE/Seaquest-v5"
    for seed, (at_100, at_300) in enumerate([(100, 300), (140, 260), (120, math.nan)]):   # seed 2 stopped at 200k
        rows = [(100_000, at_100, 2.5), (200_000, at_100, 2.0)]
        rows += [] if math.isnan(at_300) else [(300_000, at_300, 1.5)]
        write_project(learning.suite_run_dir(out, "defaults", game, seed), rows)
    for seed, (at_100, at_300) in enumerate([(150, 500), (170, 400), (160, 460)]):
        write_peer(learning.peer_run_dir(peer_out, game, seed), [(100_000, at_100, 2.6), (300_000, at_300, 1.0)])
    randoms = {game: {"mean": 60.0, "sd": 30.0, "actions": 18}}
    summary = learning.suite_summary(out, "defaults", [game], [0, 1, 2], peer_out, randoms, (100_000, 300_000))
    item = summary[game]["milestones"]
    assert item[100_000]["config"]["median"] == 120.0 and item[100_000]["config"]["min"] == 100.0
    assert item[100_000]["reference"] == {"median": 160.0, "min": 150.0, "max": 170.0, "mean": 160.0, "n": 3}
    assert item[100_000]["normalised"] == pytest.approx((120 - 60) / (160 - 60))        # 0.6
    assert item[300_000]["config"] == {"median": 280.0, "min": 260.0, "max": 300.0, "mean": 280.0, "n": 2}
    assert item[300_000]["normalised"] == pytest.approx((280 - 60) / (460 - 60))        # 0.55
    table = learning.suite_table(summary, "defaults")
    assert "| Seaquest | 60 | 120 [100 - 140] | 160 [150 - 170] | 0.60 | 280 [260 - 300] | 460 [400 - 500] | 0.55 |" \
        in table
    # the report writes the table, every curve and the plot (entropy as a fraction of ln 18)
    learning.save_json(os.path.join(out, "random_play.json"), randoms)
    learning.suite_report(out, "defaults", [game], [0, 1, 2], peer_out)
    saved = json.loads(open(os.path.join(out, "suite-defaults.json")).read())
    assert saved["summary"][game]["milestones"]["300000"]["config"]["n"] == 2
    assert os.path.getsize(os.path.join(out, "suite-defaults.png")) > 10_000


def test_airstriker_falls_back_to_the_issue_8_reference(tmp_path):
    out = str(tmp_path)
    write_project(learning.suite_run_dir(out, "defaults", learning.AIRSTRIKER, 0), [(100_000, 330.0, 1.5)])
    summary = learning.suite_summary(out, "defaults", [learning.AIRSTRIKER], [0], str(tmp_path / "peer"),
                                     {learning.AIRSTRIKER: {"mean": 176.0, "sd": 90.0, "actions": 7}}, (100_000,),
                                     peer_fallback={learning.AIRSTRIKER: {100_000: 315}})
    mark = summary[learning.AIRSTRIKER]["milestones"][100_000]
    assert mark["reference"]["median"] == 315.0 and mark["normalised"] == pytest.approx((330 - 176) / (315 - 176))


def test_screen_chooses_the_games_where_the_reference_clearly_beats_random_play(tmp_path):
    out, peer_out = str(tmp_path / "suite"), str(tmp_path / "peer")
    randoms = {"ALE/Seaquest-v5": {"mean": 60.0, "sd": 30.0}, "ALE/Qbert-v5": {"mean": 160.0, "sd": 40.0},
               "ALE/Pong-v5": {"mean": -20.5, "sd": 0.8}, "ALE/MsPacman-v5": {"mean": 250.0, "sd": 80.0},
               "ALE/Freeway-v5": {"mean": 0.0, "sd": 0.0}}
    finals = {"ALE/Seaquest-v5": 300.0,   # gain (300 - 60) / 60 = 4
              "ALE/Qbert-v5": 250.0,      # 90 / 160 = 0.56
              "ALE/Pong-v5": -19.0,       # 1.5 / 20.5 = 0.07: not clear
              "ALE/MsPacman-v5": 600.0,   # 350 / 250 = 1.4
              "ALE/Freeway-v5": 21.0}     # 21 / 1 = 21 (random play's size is at least 1 point)
    learning.save_json(os.path.join(out, "random_play.json"), randoms)
    for game, final in finals.items():
        write_peer(learning.peer_run_dir(peer_out, game, 0), [(99_328, final / 2, 1.0), (299_008, final, 1.0)])
    write_peer(learning.peer_run_dir(peer_out, "ALE/BeamRider-v5", 0), [(99_328, 500.0, 1.0)])   # still running
    result = learning.screen(list(finals) + ["ALE/Enduro-v5", "ALE/BeamRider-v5"], out, peer_out)  # Enduro: not run
    assert result["games"]["ALE/Pong-v5"]["clear"] is False
    assert result["games"]["ALE/Qbert-v5"]["gain"] == pytest.approx(90 / 160)
    assert result["chosen"] == ["ALE/Freeway-v5", "ALE/Seaquest-v5", "ALE/MsPacman-v5"]   # the 3 largest gains
    assert "ALE/Enduro-v5" not in result["games"] and "ALE/BeamRider-v5" not in result["games"]
    assert learning.suite_games(out) == [learning.AIRSTRIKER, "ALE/Freeway-v5", "ALE/Seaquest-v5", "ALE/MsPacman-v5"]
    assert "| Pong | -20.5 (0.8) | -10 | -19 | 0.07 | no |" in open(os.path.join(out, "screen.md")).read()


def test_suite_runs_start_with_the_game_and_resume_from_their_checkpoint(tmp_path):
    out = str(tmp_path)
    command = learning.suite_command("defaults", "ALE/Qbert-v5", 2, 300_000, out, 8, 512)
    assert command[command.index("--game") + 1] == "ALE/Qbert-v5" and command[command.index("--seed") + 1] == "2"
    assert command[command.index("--run-name") + 1] == "defaults-Qbert-s2"
    os.makedirs(os.path.join(learning.suite_run_dir(out, "defaults", "ALE/Qbert-v5", 2), "checkpoints", "latest"))
    resume = learning.suite_command("defaults", "ALE/Qbert-v5", 2, 300_000, out, 8, 512)
    assert "--resume" in resume and "--game" not in resume and "--seed" not in resume
    assert learning.game_label("ALE/SpaceInvaders-v5") == "SpaceInvaders"
    assert learning.game_label(learning.AIRSTRIKER) == "Airstriker"


def run_bench(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "bench", "learning.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_suite_before_the_screen_and_a_bad_game_are_one_error_line(tmp_path):
    result = run_bench("--suite", "--out", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: the suite has 0 ALE games of 3")
    result = run_bench("--suite", "--games", "Pong", "--out", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Pong is neither" in result.stderr
    result = run_bench("--random-play", "--games", "ALE/Nope-v5", "--out", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "ALE/Nope-v5 is neither" in result.stderr
    result = run_bench("--screen", "--suite")
    assert result.returncode == 2 and "give one of" in result.stderr


def test_reference_script_trims_its_rows_to_the_checkpoint(tmp_path):
    folder = str(tmp_path / "Qbert-s0")
    write_peer(folder, [(1024, "", 2.9), (2048, 40.0, 2.8), (3072, 50.0, 2.7)],
               episodes=[(1500, 40.0), (2048, 60.0), (2900, 80.0)])
    scores, elapsed = ppo_reference.trim_to(folder, 2048)      # the checkpoint was written at 2048 steps
    assert scores == [40.0, 60.0] and elapsed == 2.0
    assert learning.read_peer_curve(folder)["total_timesteps"] == [1024.0, 2048.0]
    assert ppo_reference.run_name("ALE/MsPacman-v5", 1) == "MsPacman-s1"
    assert ppo_reference.Linear(2.5e-4)(0.5) == 1.25e-4 and ppo_reference.Linear(0.1)(1.0) == 0.1


def test_reference_script_refuses_a_bad_game_in_one_line():
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "peer", "ppo_reference.py"),
                             "--game", "ALE/Nope-v5"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --game 'ALE/Nope-v5' is not an ALE game")
    assert result.stderr.count("\n") == 1


def test_reference_script_drops_a_row_cut_short_by_a_stop(tmp_path):
    folder = str(tmp_path / "Pong-s0")
    write_peer(folder, [(1024, -21.0, 1.79), (2048, -20.0, 1.78)], episodes=[(1500, -21.0)])
    with open(os.path.join(folder, "episodes.csv"), "a") as fh:
        fh.write("20")                                          # stopped while writing 2048,-20.0,...
    scores, _ = ppo_reference.trim_to(folder, 2048)
    assert scores == [-21.0] and learning.read_peer_scores(folder) == [(1500, -21.0)]
