"""The per-level figures of a run over several levels, shown without the Sonic ROM.

No game with several levels runs here without a ROM (stable-retro ships one game, Airstriker, with one level),
so this trains the embedded game with its envs split into groups and labels each group's episodes as a level
of its own (Level1/a, Level1/b, ...): the groups differ only in their envs' seeds. The training is the
project's own (model.train, the defaults, env processes as agent.py starts them); the run folder is an
ordinary one, so `plot.py --levels` and TensorBoard's levels/ show what a Sonic run over 13 levels shows.

Example (README, 'Watching a Sonic run'):
    python bench/levels_demo.py --groups 3 --envs-per-group 2 --steps 61440 --out runs/levels-demo
    python plot.py runs/levels-demo --levels --smooth 3 -o docs/levels-demo.png
"""
import argparse
import functools
import os
import string
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def labelled_env(label: str):
    """The embedded game's level in the full wrapper chain, its episodes labelled `label`."""
    import env as envs
    return envs.wrap(envs.make_retro(envs.DEFAULT_GAME, envs.DEFAULT_STATE), level=label)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=3, help="groups of envs, each labelled as a level (2 to 26)")
    parser.add_argument("--envs-per-group", type=int, default=2, help="envs of each group")
    parser.add_argument("--nsteps", type=int, default=512, help="steps of each env per update")
    parser.add_argument("--steps", type=int, default=61440, help="agent steps to train for")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run")
    parser.add_argument("--out", default=os.path.join("runs", "levels-demo"), help="the run folder (new)")
    return parser


def demo(args) -> int:
    from errors import ConfigError, check_number
    check_number("--envs-per-group", args.envs_per_group, positive=True)
    if not 2 <= args.groups <= 26:
        raise ConfigError(f"--groups must lie between 2 and 26, got {args.groups}")
    if os.path.exists(args.out):
        raise ConfigError(f"{args.out!r} exists: give a new --out (nothing is overwritten)")
    from cli import import_tensorflow
    import_tensorflow()
    from architecture import A2CPolicy
    from config import TrainConfig
    from model import train
    from vec_env import SubprocVecEnv
    labels = [f"Level1/{string.ascii_lowercase[g]}" for g in range(args.groups)]
    fns = [functools.partial(labelled_env, label) for label in labels for _ in range(args.envs_per_group)]
    config = TrainConfig(num_envs=len(fns), nsteps=args.nsteps, total_timesteps=args.steps, log_interval=1,
                         seed=args.seed, runs_dir=os.path.dirname(os.path.abspath(args.out)), progress=False,
                         models_dir=os.path.join(args.out, "models"))   # leaves models/latest as it was
    venv = SubprocVecEnv(fns, seed=args.seed, names=[f"group {label}" for label in labels
                                                      for _ in range(args.envs_per_group)])
    try:
        train(A2CPolicy, venv, config, run_dir=args.out, extra_config={"levels_demo": labels})
    finally:
        venv.close()
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    return run_command(demo, args)


if __name__ == "__main__":
    sys.exit(main())
