"""bench/learning.py on a tiny budget: it trains each configuration for each seed, resumes a stopped benchmark
from the runs' checkpoints, and writes the table, the curves and the plot it promises."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "bench", "learning.py")


def bench(out, steps, *extra):
    return subprocess.run([sys.executable, SCRIPT, "--configs", "defaults,2018", "--seeds", "1", "--steps", str(steps),
                           "--num-envs", "2", "--nsteps", "32", "--jobs", "2", "--milestones", "64,128",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_learning_benchmark_trains_resumes_and_reports(tmp_path):
    out = tmp_path / "results"
    first = bench(out, 64)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    second = bench(out, 128)     # a larger budget: every run resumes from its checkpoint, none starts again
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert second.stdout.count("--resume") == 2 and "--seed" not in second.stdout
    third = bench(out, 128)      # all finished: nothing runs again, the report is rewritten
    assert "start " not in third.stdout and third.returncode == 0

    report = json.loads((out / "results.json").read_text())
    assert set(report["summary"]) == {"defaults", "2018"}
    for name, item in report["summary"].items():
        assert sorted(item["seeds"]) == ["0"]
        for curves in item["seeds"].values():
            assert curves["total_timesteps"] == [64.0, 128.0]
            assert len(curves["policy_entropy"]) == len(curves["explained_variance"]) == 2
        assert item["wall_s"] > 0
    config_2018 = json.loads((out / "runs" / "2018-s0" / "config.json").read_text())
    assert config_2018["optimizer"] == "rmsprop-2018" and config_2018["num_envs"] == 2 and config_2018["nsteps"] == 32
    table = (out / "results.md").read_text()
    assert "| defaults | 1 |" in table and "| 2018 | 1 |" in table and "return @64" in table
    assert (out / "learning.png").stat().st_size > 10_000


def test_learning_benchmark_refuses_an_unknown_configuration(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "--configs", "nope", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown configuration nope" in result.stderr


def write_progress(folder, rows):
    os.makedirs(folder)
    with open(os.path.join(folder, "progress.csv"), "w") as fh:
        fh.write("nupdates,total_timesteps,fps,policy_entropy,explained_variance,time_elapsed,ep_return_mean\n")
        for update, (steps, ret) in enumerate(rows, 1):
            fh.write(f"{update},{steps},100,1.9,0.5,{update * 10},{ret}\n")


def test_milestones_are_the_median_and_range_over_seeds(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "bench"))
    import learning
    curves = {0: [(50, ""), (100, 150), (150, 170), (200, 190)],     # no episode ended before 100 steps
              1: [(50, 120), (100, 160), (150, 200), (200, 260)],
              2: [(50, 130), (100, 180), (150, 210)]}               # stopped early: no figure at 200
    for seed, rows in curves.items():
        write_progress(learning.run_dir(str(tmp_path), "defaults", seed), rows)
    summary = learning.summarise(str(tmp_path), ["defaults"], [0, 1, 2], milestones=(100, 200, 120))
    table = summary["defaults"]["milestones"]
    assert table[100] == {"median": 160.0, "min": 150.0, "max": 180.0, "seeds": 3}
    assert table[200] == {"median": 225.0, "min": 190.0, "max": 260.0, "seeds": 2}
    assert table[120]["median"] == 160.0                    # the last row at or before 120 steps
    assert summary["defaults"]["wall_s"] == 40.0            # median of 40, 40, 30
    text = learning.markdown_table(summary, (100, 200))
    assert "| defaults | 3 | 160 [150 - 180] | 225 [190 - 260] | 1 min |" in text


def test_seed_list_runs_and_reports_those_seeds_only(tmp_path, capsys):
    sys.path.insert(0, os.path.join(REPO, "bench"))
    import learning
    assert learning.parse_args(["--seeds", "2"]).seed_values == [0, 1]
    assert learning.parse_args(["--seeds", "2", "--seed-list", "3,1,3"]).seed_values == [1, 3]
    for rows_seed, ret in ((0, 100), (1, 200), (3, 300)):
        write_progress(learning.run_dir(str(tmp_path), "defaults", rows_seed), [(64, ret), (128, ret)])
    assert learning.main(["--configs", "defaults", "--seed-list", "1,3", "--report-only", "--out", str(tmp_path),
                          "--milestones", "128", "--steps", "128", "--num-envs", "2", "--nsteps", "32"]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert sorted(report["summary"]["defaults"]["seeds"]) == ["1", "3"]
    assert report["summary"]["defaults"]["milestones"]["128"]["median"] == 250.0    # seed 0's 100 left out
    for bad in ("one", "-1"):
        with pytest.raises(SystemExit) as stopped:
            learning.parse_args(["--seed-list", bad])
        assert stopped.value.code == 2
        assert "--seed-list" in capsys.readouterr().err


def test_every_named_configuration_states_the_settings_the_defaults_may_change(monkeypatch):
    """A configuration measured once must mean the same runs after the defaults change: each one (but 'defaults'
    and '2018') gives the optimizer, advantages, passes, minibatches, learning rate, ratio cap, KL bound and value
    weight (and whether the value trains after the bound), and agent.py's parser reads them back to what the name
    says."""
    monkeypatch.syspath_prepend(REPO)
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    import learning
    from agent import build_parser
    from config import config_from_args
    stated = ("--optimizer", "--noptepochs", "--nminibatches", "--lr", "--policy-loss", "--max-kl", "--vf-coef",
              "--life-loss-penalty")
    for name, options in learning.CONFIGS.items():
        if name in ("defaults", "2018"):
            continue
        missing = [option for option in stated if option not in options]
        assert not missing, (name, missing)
        assert "--normalize-advantages" in options or "--no-normalize-advantages" in options, name
        assert "--value-after-kl" in options or "--no-value-after-kl" in options, name
        assert "--life-loss-terminal" in options or "--no-life-loss-terminal" in options, name
    config = config_from_args(build_parser().parse_args(learning.CONFIGS["rmsprop0-norm-1x8"]))
    assert (config.optimizer, config.noptepochs, config.nminibatches, config.policy_loss, config.max_kl,
            config.vf_coef, config.value_after_kl) == ("rmsprop", 1, 8, "a2c", 0.0, 0.5, False)
    config = config_from_args(build_parser().parse_args(learning.CONFIGS["adam-norm-4x8-cap1-kl0.02-vf5-vkl"]))
    assert (config.max_kl, config.vf_coef, config.value_after_kl) == (0.02, 5.0, True)
    config = config_from_args(build_parser().parse_args(learning.CONFIGS["adam-norm-4x8-cap1-kl0.02-vf5-life"]))
    assert (config.max_kl, config.vf_coef, config.life_loss_terminal, config.life_loss_penalty) == (0.02, 5.0, True, 0)
    config = config_from_args(build_parser().parse_args(learning.CONFIGS["adam-norm-4x8-cap1-kl0.02-vf5-life-pen0.25"]))
    assert (config.life_loss_terminal, config.life_loss_penalty) == (True, 0.25)
