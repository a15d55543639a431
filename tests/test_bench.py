"""The benchmark script runs end to end on a tiny configuration and reports every figure it promises."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_configuration(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "throughput.py"), "--configs", "tiny",
                             "--reps", "1", "--updates", "1", "--ceiling-steps", "10", "--train-steps", "1",
                             "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] == os.cpu_count()
    assert "tensorflow" in report["machine"]["versions"]
    tiny = report["configs"]["tiny"]
    assert tiny["settings"] == {"num_envs": 2, "nsteps": 64, "noptepochs": 2, "nminibatches": 4, "minibatch": 32,
                                "updates_measured": 1}
    for key in ("ceiling_steps_per_s", "train_op_samples_per_s", "learn_steps_per_s",
                "learn_sampling_steps_per_s", "learn_training_samples_per_s", "learn_peak_memory_mib"):
        assert tiny[key]["min"] > 0 and tiny[key]["min"] <= tiny[key]["median"] <= tiny[key]["max"], key
    shares = sum(tiny[f"learn_share_{part}"]["median"] for part in ("sampling", "training", "rest"))
    assert abs(shares - 1.0) < 1e-6
    assert 0 < tiny["ratio_learn_to_ceiling"]["median"]
    assert "ratio_sampling_to_ceiling" in result.stdout and "min" in result.stdout


def test_benchmark_refuses_an_unknown_configuration(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "throughput.py"), "--configs", "huge"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown configuration" in result.stderr
