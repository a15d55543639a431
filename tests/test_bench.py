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


@pytest.mark.slow
@pytest.mark.ray
def test_benchmark_compares_the_ray_backend_side_by_side(tmp_path):
    """--backend ray on the tiny configuration (1 worker of 2 envs, one pair of updates): every figure the README
    quotes is there."""
    out = tmp_path / "ray.json"
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "throughput.py"), "--backend", "ray",
                             "--configs", "tiny", "--num-workers", "1", "--reps", "1", "--json", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    tiny = json.loads(out.read_text())["configs"]["tiny"]
    assert tiny["settings"] == {"num_envs": 2, "nsteps": 64, "num_workers": 1, "envs_per_worker": 2, "pairs": 1}
    for key in ("local_sampling_steps_per_s", "ray_sampling_steps_per_s", "ratio_ray_to_local", "ray_weights_bytes",
                "ray_weights_put_s", "ray_weights_fetch_s", "ray_rollout_bytes", "ray_rollout_get_s",
                "ray_worker_peak_pss_mib"):
        assert tiny[key]["min"] > 0, key
    assert tiny["ray_rollout_bytes"]["median"] >= 2 * 64 * 96 * 96
    assert "ratio_ray_to_local" in result.stdout


def test_benchmark_refuses_workers_that_do_not_divide_the_envs(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "throughput.py"), "--backend", "ray",
                             "--configs", "seed", "--num-workers", "2"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert "--num-workers 2 does not divide the 13 envs of 'seed'" in result.stderr
