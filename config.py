"""Every hyperparameter and run setting in one place, with the 2018 scripts' values as defaults.

`TrainConfig` is the single source of truth: `agent.py` builds its command line from the fields below
(their docs become the `--help` text), `learn` reads them, and a run saves them as `config.json` so that
`--resume` can refuse a silently changed hyperparameter.
"""
import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

# Fields a resumed run may change without `--allow-config-change`: they do not alter what is learned.
RESUMABLE_WITHOUT_CHANGE = frozenset({
    "total_timesteps", "log_interval", "keep_checkpoints", "restart_workers", "progress",
    "run_name", "runs_dir", "models_dir", "worker_timeout",
})


@dataclass
class TrainConfig:
    """Hyperparameters of A2C (seed defaults) and the settings of one training run."""
    # --- the environment ---
    game: str = field(default="auto", metadata={"help": "'auto' (Sonic when its ROM is imported, else the embedded default game), 'sonic', or a stable-retro game id"})
    levels: str = field(default="", metadata={"help": "comma-separated states to train on (default: env.LEVELS for Sonic, the game's first state otherwise)"})
    num_envs: int = field(default=0, metadata={"help": "environments (one process each); 0 = one per level: len(--levels), else len(env.LEVELS) = 13"})
    vec_env: str = field(default="subproc", metadata={"help": "'subproc' (one process per env) or 'dummy' (all in this process; one env only for emulators)"})
    seed: int = field(default=0, metadata={"help": "seed of the learner's and the environments' random generators"})
    # --- A2C (the seed's values) ---
    nsteps: int = field(default=2048, metadata={"help": "steps collected from every env per update"})
    total_timesteps: int = field(default=10_000_000, metadata={"help": "agent steps to train for, over all envs"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the value loss"})
    ent_coef: float = field(default=0.01, metadata={"help": "weight of the entropy bonus"})
    lr: float = field(default=2e-4, metadata={"help": "RMSProp learning rate"})
    lr_schedule: str = field(default="constant", metadata={"help": "'constant' (the seed) or 'linear' (decays to 0 at total_timesteps)"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "gradients are clipped to this global norm"})
    noptepochs: int = field(default=4, metadata={"help": "passes over each batch"})
    nminibatches: int = field(default=8, metadata={"help": "minibatches per pass; nenvs * nsteps must be divisible by it"})
    truncation_as_terminal: bool = field(default=False, metadata={"help": "treat a time-limit cut like a real episode end (the seed's behaviour) instead of bootstrapping from its last value"})
    # --- logging and checkpoints ---
    log_interval: int = field(default=10, metadata={"help": "updates between table rows and checkpoints"})
    keep_checkpoints: int = field(default=5, metadata={"help": "how many recent checkpoints to keep (the best is kept as well)"})
    run_name: str = field(default="", metadata={"help": "name of the run folder under runs_dir (default: game and start time)"})
    runs_dir: str = field(default="runs", metadata={"help": "folder that holds one folder per run"})
    models_dir: str = field(default="models", metadata={"help": "folder whose 'latest' file points at the newest checkpoint (what play.py loads)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar when the output is a terminal"})
    # --- robustness ---
    restart_workers: bool = field(default=False, metadata={"help": "restart an env worker that dies or raises, and go on"})
    worker_timeout: float = field(default=60.0, metadata={"help": "seconds an env worker may take for one step before it counts as hung"})

    @property
    def updates_total(self) -> int:
        """Number of updates the run makes: total_timesteps // (nenvs * nsteps), as the seed."""
        return self.total_timesteps // (self.num_envs * self.nsteps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and what to do."""


def validate(config: TrainConfig) -> None:
    """Raise ConfigError for a setting that cannot work. `num_envs` must already be resolved."""
    positive = ("nsteps", "total_timesteps", "lr", "noptepochs", "nminibatches", "log_interval",
                "keep_checkpoints", "max_grad_norm", "worker_timeout")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
    if config.num_envs <= 0:
        raise ConfigError(f"--num-envs must be positive, got {config.num_envs}")
    if not (0.0 <= config.gamma <= 1.0 and 0.0 <= config.lam <= 1.0):
        raise ConfigError("--gamma and --lam must lie between 0 and 1")
    batch = config.num_envs * config.nsteps
    if batch % config.nminibatches:
        raise ConfigError(f"num_envs * nsteps = {batch} is not divisible by --nminibatches {config.nminibatches}: "
                          "choose nsteps or nminibatches so that it is")
    if config.total_timesteps < batch:
        raise ConfigError(f"--total-timesteps {config.total_timesteps} is less than one update "
                          f"(num_envs * nsteps = {batch}): raise it or shrink the run")
    if config.lr_schedule not in ("constant", "linear"):
        raise ConfigError(f"--lr-schedule must be 'constant' or 'linear', got {config.lr_schedule!r}")
    if config.vec_env not in ("subproc", "dummy"):
        raise ConfigError(f"--vec-env must be 'subproc' or 'dummy', got {config.vec_env!r}")


def add_config_arguments(parser: argparse.ArgumentParser, defaults: Optional[TrainConfig] = None) -> None:
    """Add one --option per TrainConfig field, with the field's doc as help."""
    defaults = defaults or TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f.metadata["help"])
        else:
            kind = {int: int, float: float, str: str, "int": int, "float": float, "str": str}[f.type]
            parser.add_argument(flag, dest=f.name, type=kind, default=default,
                                help=f"{f.metadata['help']} (default: {default})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def config_differences(saved: dict, current: TrainConfig) -> list:
    """Names of the settings that differ and change what is learned: [(name, saved, current)]."""
    out = []
    for name, value in current.to_dict().items():
        if name in RESUMABLE_WITHOUT_CHANGE or name not in saved:
            continue
        if saved[name] != value:
            out.append((name, saved[name], value))
    return out
