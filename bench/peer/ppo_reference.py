"""The reference for the learning benchmark's suite: Stable-Baselines3's PPO with rl-baselines3-zoo's Atari settings,
on one (game, seed, budget), resumable.

Runs in its own virtual environment (bench/peer/README.md: bench/peer/requirements.txt, torch on the CPU), never the
project's: nothing here imports the project, and the project imports nothing from here.

What was taken, and from where:
  * the hyperparameters: rl-baselines3-zoo, hyperparams/ppo.yml, entry `atari` (github.com/DLR-RM/rl-baselines3-zoo,
    read at commit 00128b5d46d4): CnnPolicy, 8 envs, n_steps 128, 4 epochs, batch 256, learning rate linear from
    2.5e-4, clip range linear from 0.1, vf_coef 0.5, ent_coef 0.01; the wrapper stable_baselines3's AtariWrapper and
    a 4-frame stack. Everything else is SB3 PPO's own default (gamma 0.99, GAE lambda 0.95, max_grad_norm 0.5,
    normalised advantages, no value clipping). The zoo's `lin_X` is X x the fraction of the run left (1 -> 0 over
    its n_timesteps); here the run is the budget (--steps), as the zoo does when given `-n`.
  * the environment: `ALE/<Name>-v5` with sticky actions 0.25 and 4 frames per agent step, as the project's chain
    (env.make_atari: ALE's own frame skip 4, repeat_action_probability 0.25, the minimal action set, at most
    108,000 frames an episode). Frames are skipped once: ALE is made with frameskip=1 and AtariWrapper's
    MaxAndSkipEnv(4) repeats each action for 4 frames, so the emulator sees what the project's envs see (ale-py
    applies the sticky draw to every emulated frame, whichever of the two repeats the action), and the agent gets
    the zoo's full wrapper: the maximum of the last two frames, up to 30 no-ops at reset, FIRE after a reset where the
    game has FIRE, a lost life as the end of the learner's episode, rewards clipped to their sign, 84 x 84 gray.
    AtariWrapper's own sticky actions stay off (ALE's are on).
  * the seeds, as the project: env i is seeded seed + i (SB3's make_atari_env), torch and numpy seed.

What it writes, in OUT/<Name>-s<seed>/ (OUT default bench/peer/results):
  progress.csv   one row per update, the columns of the project's progress.csv where they exist: nupdates,
                 total_timesteps, fps, policy_loss, policy_entropy (the mean over the update's minibatches, SB3's
                 train/entropy_loss with its sign turned), value_loss, explained_variance, time_elapsed,
                 ep_return_mean and ep_length_mean over the last 100 whole games, approx_kl, clip_fraction,
                 learning_rate, clip_range
  episodes.csv   every finished game: total_timesteps (agent steps when it ended), score (the game's own points,
                 before clipping, over all lives: a whole game), frames (emulator frames, the no-ops included)
  config.json    the settings and library versions
  checkpoint/    latest.zip (the model and its optimizer), about every 25k agent steps and at the end; gitignored

Run again with the same command after a stop: it loads checkpoint/latest.zip, drops the rows written after it
(the updates since are trained again; the games in progress start again: the envs are re-seeded with
seed + i + the steps done) and goes on to the budget. A finished run says so and exits 0.

Examples (from the repository root, in the reference's own environment):
    bench/peer/.venv/bin/python bench/peer/ppo_reference.py --game ALE/Seaquest-v5 --seed 0 --steps 300000
    bench/peer/.venv/bin/python bench/peer/ppo_reference.py --game ALE/Qbert-v5 --seed 2 --steps 300000 --out /tmp/p
"""
import argparse
import collections
import csv
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results")

# rl-baselines3-zoo, hyperparams/ppo.yml, `atari`
ZOO_ATARI = dict(n_envs=8, n_steps=128, n_epochs=4, batch_size=256, learning_rate=2.5e-4, clip_range=0.1,
                 vf_coef=0.5, ent_coef=0.01, frame_stack=4)
STICKY = 0.25                 # as the project's chain (env.STICK_PROB)
FRAMES_PER_STEP = 4           # as the project's chain (env.FRAME_SKIP), done once, by AtariWrapper
EPISODE_WINDOW = 100          # games averaged in ep_return_mean, as the project
CHECKPOINT_EVERY = 25_000     # agent steps between checkpoints (at the next update's end)
PROGRESS_COLUMNS = ["nupdates", "total_timesteps", "fps", "policy_loss", "policy_entropy", "value_loss",
                    "explained_variance", "time_elapsed", "ep_return_mean", "ep_length_mean", "approx_kl",
                    "clip_fraction", "learning_rate", "clip_range"]
EPISODE_COLUMNS = ["total_timesteps", "score", "frames"]


class BadInput(Exception):
    """A bad option: one `error:` line and exit 2."""


def run_name(game: str, seed: int) -> str:
    """'ALE/Seaquest-v5', 0 -> 'Seaquest-s0'."""
    return f"{game.split('/', 1)[-1].rsplit('-v', 1)[0]}-s{seed}"


class Linear:
    """The zoo's `lin_X`: X times the fraction of the run left (SB3 passes that fraction, 1 -> 0)."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start


def check_game(game: str) -> None:
    import ale_py
    import gymnasium as gym
    gym.register_envs(ale_py)
    valid = sorted(name for name in gym.registry if name.startswith("ALE/") and name.endswith("-v5"))
    if game not in valid:
        raise BadInput(f"--game {game!r} is not an ALE game: use ALE/<Name>-v5, e.g. ALE/Seaquest-v5 "
                       f"({len(valid)} games, e.g. {', '.join(valid[:4])} ...)")


def make_envs(game: str, seed: int, n_envs: int):
    """The zoo's Atari envs over the project's emulator settings (see the module docstring)."""
    import ale_py
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    venv = make_atari_env(game, n_envs=n_envs, seed=seed,     # DummyVecEnv: in this process, as the zoo's default
                          env_kwargs=dict(frameskip=1, repeat_action_probability=STICKY, full_action_space=False),
                          wrapper_kwargs=dict(frame_skip=FRAMES_PER_STEP))
    return VecFrameStack(venv, n_stack=ZOO_ATARI["frame_stack"])


def read_rows(path: str) -> list:
    """The rows of a CSV file, less a last line cut short by a stop in the middle of its write."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        text = fh.read()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    return list(csv.DictReader(lines))


def write_rows(path: str, columns: list, rows: list) -> None:
    """The whole file, atomically."""
    with open(path + ".part", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path + ".part", path)


def append_row(path: str, columns: list, row: dict) -> None:
    new = not os.path.exists(path)
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


def make_recorder(folder: str, steps_per_update: int, start_time_elapsed: float, scores: list, every: int):
    """The SB3 callback that logs every game, one row per update, and checkpoints."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Recorder(BaseCallback):
        def __init__(self):
            super().__init__()
            self.window = collections.deque(scores[-EPISODE_WINDOW:], maxlen=EPISODE_WINDOW)
            self.lengths = collections.deque(maxlen=EPISODE_WINDOW)
            self.time_before = start_time_elapsed     # time of earlier sessions of this run
            self.started = time.time()
            self.steps_at_start = None
            self.last_logged = None
            self.last_checkpoint = None

        def _on_training_start(self) -> None:
            self.steps_at_start = self.last_logged = self.last_checkpoint = self.model.num_timesteps

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                episode = info.get("episode")          # SB3's Monitor, inside AtariWrapper: the whole game, raw
                if episode is not None:
                    self.window.append(float(episode["r"]))
                    self.lengths.append(int(episode["l"]))
                    append_row(os.path.join(folder, "episodes.csv"), EPISODE_COLUMNS,
                               {"total_timesteps": self.model.num_timesteps, "score": float(episode["r"]),
                                "frames": int(episode["l"])})
            return True

        def _on_rollout_start(self) -> None:     # the previous update is trained: its row, maybe a checkpoint
            self.after_update()

        def _on_training_end(self) -> None:
            self.after_update(final=True)

        def after_update(self, final: bool = False) -> None:
            steps = self.model.num_timesteps
            if steps == self.last_logged:
                return
            values = self.model.logger.name_to_value
            elapsed = self.time_before + time.time() - self.started
            row = {"nupdates": steps // steps_per_update, "total_timesteps": steps,
                   "fps": round((steps - self.steps_at_start) / max(time.time() - self.started, 1e-9)),
                   "policy_loss": values.get("train/policy_gradient_loss", ""),
                   "policy_entropy": -values["train/entropy_loss"] if "train/entropy_loss" in values else "",
                   "value_loss": values.get("train/value_loss", ""),
                   "explained_variance": values.get("train/explained_variance", ""),
                   "time_elapsed": round(elapsed, 1),
                   "ep_return_mean": sum(self.window) / len(self.window) if self.window else "",
                   "ep_length_mean": sum(self.lengths) / len(self.lengths) if self.lengths else "",
                   **{column: values.get(f"train/{column}", "")
                      for column in ("approx_kl", "clip_fraction", "learning_rate", "clip_range")}}
            append_row(os.path.join(folder, "progress.csv"), PROGRESS_COLUMNS, row)
            self.last_logged = steps
            if final or steps - self.last_checkpoint >= every:
                save_checkpoint(self.model, folder)
                self.last_checkpoint = steps
                mean = row["ep_return_mean"]
                print(f"{steps} steps, {elapsed / 60:.1f} min, {row['fps']} steps/s, return (last 100 games) "
                      f"{mean if mean == '' else round(mean, 1)}, entropy {row['policy_entropy']:.3f}: checkpoint",
                      flush=True)

    return Recorder()


def save_checkpoint(model, folder: str) -> None:
    path = os.path.join(folder, "checkpoint")
    os.makedirs(path, exist_ok=True)
    model.save(os.path.join(path, "latest.part.zip"))
    os.replace(os.path.join(path, "latest.part.zip"), os.path.join(path, "latest.zip"))


def trim_to(folder: str, steps: int) -> list:
    """Drop the rows written after the checkpoint (their updates train again). -> (the kept games' scores, the
    time the run had taken at the checkpoint)."""
    progress = [row for row in read_rows(os.path.join(folder, "progress.csv")) if int(row["total_timesteps"]) <= steps]
    episodes = [row for row in read_rows(os.path.join(folder, "episodes.csv")) if int(row["total_timesteps"]) <= steps]
    write_rows(os.path.join(folder, "progress.csv"), PROGRESS_COLUMNS, progress)
    write_rows(os.path.join(folder, "episodes.csv"), EPISODE_COLUMNS, episodes)
    return [float(row["score"]) for row in episodes], (float(progress[-1]["time_elapsed"]) if progress else 0.0)


def train(game: str, seed: int, steps: int, out: str, threads: int, every: int = CHECKPOINT_EVERY) -> int:
    import torch
    import stable_baselines3
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed
    torch.set_num_threads(threads)
    folder = os.path.join(out, run_name(game, seed))
    os.makedirs(folder, exist_ok=True)
    latest = os.path.join(folder, "checkpoint", "latest.zip")
    settings = dict(game=game, seed=seed, steps=steps, **ZOO_ATARI, sticky_actions=STICKY,
                    frames_per_step=FRAMES_PER_STEP, ale_frameskip=1, schedule="linear to 0 over --steps",
                    command=" ".join(["python", os.path.relpath(__file__)] + sys.argv[1:]),
                    versions={"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                              "ale_py": __import__("ale_py").__version__,
                              "gymnasium": __import__("gymnasium").__version__})
    saved_path = os.path.join(folder, "config.json")
    if os.path.exists(saved_path):
        with open(saved_path) as fh:
            saved = json.load(fh)
        for key in ("game", "seed", "steps"):
            if saved[key] != settings[key]:
                raise BadInput(f"{folder} holds a run with --{key} {saved[key]}, not {settings[key]}: give another "
                               "--out or the same options")
    with open(saved_path, "w") as fh:
        json.dump(settings, fh, indent=1)
    schedules = {"learning_rate": Linear(ZOO_ATARI["learning_rate"]), "clip_range": Linear(ZOO_ATARI["clip_range"])}
    steps_per_update = ZOO_ATARI["n_envs"] * ZOO_ATARI["n_steps"]
    if os.path.exists(latest):
        model = PPO.load(latest, device="cpu", custom_objects={**schedules, "lr_schedule": schedules["learning_rate"]})
        done = model.num_timesteps
        scores, time_before = trim_to(folder, done)
        if done >= steps:
            print(f"{folder}: finished ({done} of {steps} steps)", flush=True)
            return 0
        set_random_seed(seed + done)
        venv = make_envs(game, seed + done, ZOO_ATARI["n_envs"])
        model.set_env(venv)
        print(f"{folder}: resumed at {done} steps", flush=True)
    else:
        for stale in ("progress.csv", "episodes.csv"):   # rows of a run stopped before its first checkpoint
            if os.path.exists(os.path.join(folder, stale)):
                os.remove(os.path.join(folder, stale))
        done, scores, time_before = 0, [], 0.0
        venv = make_envs(game, seed, ZOO_ATARI["n_envs"])
        model = PPO("CnnPolicy", venv, n_steps=ZOO_ATARI["n_steps"], n_epochs=ZOO_ATARI["n_epochs"],
                    batch_size=ZOO_ATARI["batch_size"], vf_coef=ZOO_ATARI["vf_coef"], ent_coef=ZOO_ATARI["ent_coef"],
                    seed=seed, device="cpu", verbose=0, **schedules)
        print(f"{folder}: new run, {game} seed {seed}, {steps} steps", flush=True)
    recorder = make_recorder(folder, steps_per_update, time_before, scores, every)
    # the schedules' fraction left is 1 - steps done / steps: learn() counts its budget on top of the steps done
    model.learn(total_timesteps=steps - done, callback=recorder, reset_num_timesteps=False, log_interval=None)
    venv.close()
    print(f"{folder}: finished ({model.num_timesteps} steps)", flush=True)
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__[__doc__.index("Examples"):])
    parser.add_argument("--game", required=True, help="an ALE game, ALE/<Name>-v5")
    parser.add_argument("--seed", type=int, default=0, help="seed (env i gets seed + i; default 0)")
    parser.add_argument("--steps", type=int, default=300_000, help="agent steps, the budget (default 300000)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="results folder (default bench/peer/results)")
    parser.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="STEPS",
                        help=f"agent steps between checkpoints (default {CHECKPOINT_EVERY})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.seed < 0:
            raise BadInput(f"--seed must be 0 or more, got {args.seed}")
        if args.steps < ZOO_ATARI["n_envs"] * ZOO_ATARI["n_steps"]:
            raise BadInput(f"--steps must be at least one update ({ZOO_ATARI['n_envs'] * ZOO_ATARI['n_steps']}), "
                           f"got {args.steps}")
        if args.threads <= 0:
            raise BadInput(f"--threads must be positive, got {args.threads}")
        if args.checkpoint_every <= 0:
            raise BadInput(f"--checkpoint-every must be positive, got {args.checkpoint_every}")
        check_game(args.game)
        return train(args.game, args.seed, args.steps, args.out, args.threads, args.checkpoint_every)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
