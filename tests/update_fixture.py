"""The first two updates of small deterministic runs, as digests: what tests/data/updates.json records.

`python tests/update_fixture.py` rewrites the fixture (only do so on purpose: it pins the numbers of the code
that recorded it, and test_same_updates.py checks every later change of the options and the loop against it).

Each case trains 2 updates through `model.learn` (seed 5, one TensorFlow thread, a checkpoint after each) in a
process of its own (TensorFlow sizes its thread pools once per process: a case run after a session of another
size would sum in another order), and keeps, per update, the
SHA-256 of every variable's bytes in the checkpoint (weights and optimizer slots: bit for bit), their float64
sums (to say how far apart two runs are when they differ) and the table's losses. Cases: the defaults, the
2018 scripts, A2C without the ratio cap and KL bound, PPO's clip, on 2 fake image envs x 16 steps; the defaults
on 2 envs of the default game (Airstriker, the whole wrapper chain) x 32 steps. The fixture was recorded by the
code of commit 4639155, before --policy-loss, with the options of that time: `ratio_cap=0.0` for the loss that
is now 'a2c', `clip_range=0.2` for 'clip'.
"""
import csv
import hashlib
import io
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

FIXTURE = os.path.join(HERE, "data", "updates.json")
SEED, UPDATES = 5, 2
LOSSES = ("policy_loss", "value_loss", "policy_entropy")

# name -> (env kind, nsteps, learn() keywords beyond the defaults)
CASES = {
    "defaults": ("fake", 16, {}),
    "exact_2018": ("fake", 16, {"exact_2018": True, "vf_coef": 0.5}),
    "a2c_unbounded": ("fake", 16, {"policy_loss": "a2c", "max_kl": 0.0}),
    "ppo_clip": ("fake", 16, {"policy_loss": "clip", "clip_range": 0.2, "max_kl": 0.0}),
    "defaults_airstriker": ("real", 32, {}),
}


def env_fns(kind: str) -> list:
    if kind == "fake":
        import faulty_envs
        return faulty_envs.env_fns(2, 7)
    import env as game_env
    return game_env.env_fns(2, "Airstriker-Genesis-v0")


def digests(checkpoint_prefix: str) -> dict:
    """{variable: [sha256 of its bytes, float64 sum]} of a TF checkpoint."""
    import tensorflow.compat.v1 as tf
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    out = {}
    for name in sorted(reader.get_variable_to_shape_map()):
        value = np.ascontiguousarray(reader.get_tensor(name))
        out[name] = [hashlib.sha256(value.tobytes()).hexdigest(), float(value.astype(np.float64).sum())]
    return out


def run_case(name: str, runs_dir: str) -> list:
    """[per update: {'variables': digests, 'losses': {column: value}}] of case `name`."""
    from architecture import A2CPolicy
    from model import learn
    from vec_env import SubprocVecEnv
    kind, nsteps, keywords = CASES[name]
    keywords = dict(keywords)
    run_dir = os.path.join(runs_dir, name)
    venv = SubprocVecEnv(env_fns(kind), seed=SEED)
    try:
        learn(A2CPolicy, venv, nsteps=nsteps, total_timesteps=UPDATES * 2 * nsteps, gamma=0.99, lam=0.95,
              vf_coef=keywords.pop("vf_coef", 5.0), ent_coef=0.01, lr=2e-4, max_grad_norm=0.5, log_interval=1,
              seed=SEED, run_dir=run_dir, runs_dir=runs_dir, models_dir=os.path.join(runs_dir, "models"),
              progress=False, stream=io.StringIO(), tf_threads=1, **keywords)
    finally:
        venv.close()
    with open(os.path.join(run_dir, "progress.csv")) as fh:
        rows = list(csv.DictReader(fh))
    return [{"variables": digests(os.path.join(run_dir, "checkpoints", f"{update:06d}", "model.ckpt")),
             "losses": {column: float(rows[update - 1][column]) for column in LOSSES}}
            for update in range(1, UPDATES + 1)]


def run_case_in_a_process(name: str) -> list:
    """run_case(name) in a fresh Python process (see the module's doc)."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as runs_dir:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", name, "--runs-dir", runs_dir],
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"case {name} failed:\n{done.stderr[-3000:]}")
        with open(os.path.join(runs_dir, "case.json")) as fh:
            return json.load(fh)


def main(argv=None) -> None:
    import argparse
    parser = argparse.ArgumentParser(description="record tests/data/updates.json, or run one case")
    parser.add_argument("--case", choices=list(CASES), help="run this case here, into RUNS_DIR/case.json")
    parser.add_argument("--runs-dir")
    args = parser.parse_args(argv)
    if args.case:
        updates = run_case(args.case, args.runs_dir)
        with open(os.path.join(args.runs_dir, "case.json"), "w") as fh:
            json.dump(updates, fh)
        return
    recorded = {name: run_case_in_a_process(name) for name in CASES}
    with open(FIXTURE, "w") as fh:
        json.dump(recorded, fh, indent=1, sort_keys=True)
    print(FIXTURE, os.path.getsize(FIXTURE), "bytes")


if __name__ == "__main__":
    main()
