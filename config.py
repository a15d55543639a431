"""Every hyperparameter and run setting in one place. The defaults are those that learn best on the learning
benchmark (bench/learning.py; README, 'Defaults and the 2018 scripts'); where they differ from the 2018
scripts, BEHAVIOUR_2018 and HYPERPARAMETERS_2018 below hold the 2018 values, which `--exact-2018` restores.

`TrainConfig` is the single source of truth: `agent.py` builds its command line from the fields below
(their docs become the `--help` text), `learn` reads them, and a run saves them as `config.json` so that
`--resume` can refuse a silently changed hyperparameter. `resolve` and `with_envs` (at the end) decide a run's
settings, in the one order of precedence that `resolve` states.
"""
import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Optional

from errors import CheckpointError, ConfigError, check_number  # ConfigError raised here (config.ConfigError as before)

OPTIMIZERS = ("rmsprop", "rmsprop-2018", "adam")   # --optimizer (model.Model builds each)
POLICY_LOSSES = ("a2c", "capped", "clip")           # --policy-loss (model.Model builds each)
LOSS_PARAMETERS = {"ratio_cap": "capped", "clip_range": "clip"}   # the setting of each loss that has one
BACKENDS = ("local", "ray")                         # --backend (env.build_vec_env builds each)

# Fields a resumed run may change without `--allow-config-change`: they do not alter what is learned.
RESUMABLE_WITHOUT_CHANGE = frozenset({
    "total_timesteps", "log_interval", "keep_checkpoints", "restart_workers", "progress",
    "run_name", "runs_dir", "models_dir", "worker_timeout",
    "backend", "ray_address", "num_workers", "envs_per_worker",   # where envs run; a batch is the same (ray_backend)
    "double_buffer",   # how the envs are stepped: each env sees the same observations and actions
    "eval_every", "eval_episodes", "eval_levels", "video_every", "collapse_warning",   # watch, do not steer
})


@dataclass
class TrainConfig:
    """Hyperparameters of A2C (the defaults that learn best on the learning benchmark; the 2018 values below)
    and the settings of one training run."""
    # --- the environment ---
    game: str = field(default="auto", metadata={"help": "'auto' (Sonic when its ROM is imported, else the embedded default game), 'sonic', or a stable-retro game id"})
    levels: str = field(default="", metadata={"help": "comma-separated states to train on (default: env.LEVELS for Sonic, the game's first state otherwise)"})
    num_envs: int = field(default=0, metadata={"help": "environments (one process each); 0 = one per level: len(--levels), else len(env.LEVELS) = 13 on Sonic and 8 on a game with one level"})
    vec_env: str = field(default="subproc", metadata={"help": "'subproc' (one process per env) or 'dummy' (all in this process; one env only for emulators)"})
    double_buffer: bool = field(default=False, metadata={"help": "step the envs in two halves, the policy choosing for one half while the other half's envs step: for machines with more cores than the envs and the policy fill together (README, Performance: on 2 cores it did not pay)"})
    seed: int = field(default=0, metadata={"help": "seed of the learner's and the environments' random generators"})
    # --- where the envs run (README, 'Training on a cluster') ---
    backend: str = field(default="local", metadata={"help": "'local' (env processes on this machine) or 'ray' (rollout workers on a Ray cluster; the learner trains here)"})
    ray_address: str = field(default="", metadata={"help": "with --backend ray: '' starts Ray on this machine (and stops it at the end), 'auto' joins the cluster this machine belongs to (`ray start`), HOST:PORT joins that head"})
    num_workers: int = field(default=2, metadata={"help": "with --backend ray: rollout workers (Ray actors, one CPU each); num_envs = num_workers x envs_per_worker"})
    envs_per_worker: int = field(default=4, metadata={"help": "with --backend ray: envs of each worker (one process each)"})
    # --- A2C (the seed's values, but for nsteps and vf_coef: see HYPERPARAMETERS_2018, BEHAVIOUR_2018) ---
    nsteps: int = field(default=512, metadata={"help": "steps collected from every env per update (2018: 2048)"})
    total_timesteps: int = field(default=10_000_000, metadata={"help": "agent steps to train for, over all envs"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    vf_coef: float = field(default=5.0, metadata={"help": "weight of the value loss (2018: 0.5; rewards are scaled by 0.01, so at 0.5 the value error barely trains the shared layers)"})
    ent_coef: float = field(default=0.01, metadata={"help": "weight of the entropy bonus"})
    lr: float = field(default=2e-4, metadata={"help": "learning rate"})
    lr_schedule: str = field(default="constant", metadata={"help": "'constant' (the seed) or 'linear' (decays to 0 at total_timesteps)"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "gradients are clipped to this global norm"})
    noptepochs: int = field(default=4, metadata={"help": "passes over each batch (2018: 4; with --policy-loss a2c and no --max-kl, more than 1 collapsed the policy on the benchmark)"})
    nminibatches: int = field(default=8, metadata={"help": "minibatches per pass; nenvs * nsteps must be divisible by it"})
    truncation_as_terminal: bool = field(default=False, metadata={"help": "treat a time-limit cut like a real episode end (the seed's behaviour) instead of bootstrapping from its last value"})
    # --- what the project changes (README, 'Defaults and the 2018 scripts'; --exact-2018 undoes all of it) ---
    life_loss_terminal: bool = field(default=True, metadata={"help": "a step that costs a life ends the value chain as an episode's end does, the episode going on (2018: lives were not looked at); games without a 'lives' variable are unaffected"})
    life_loss_penalty: float = field(default=0.25, metadata={"help": "subtracted from the learner's reward (scaled by 0.01: 0.25 is 25 points) on a step that costs a life; the logged returns stay the game's own (2018: 0)"})
    optimizer: str = field(default="adam", metadata={"help": "'adam', 'rmsprop' (mean square starts at 0, bias-corrected) or 'rmsprop-2018' (TF1's: starts at 1.0, barely moves for the first ~1,500 steps)"})
    normalize_advantages: bool = field(default=True, metadata={"help": "scale advantages to mean 0, std 1 in every minibatch (2018: raw)"})
    policy_loss: str = field(default="capped", metadata={"help": "the policy objective: 'a2c' (A2C's policy gradient, the 2018 loss), 'capped' (A2C's with each sample weighted by min(--ratio-cap, pi/pi_old): minibatches taken after the policy has moved stop pushing down actions it already made rare) or 'clip' (PPO's clipped surrogate, range --clip-range)"})
    ratio_cap: float = field(default=1.0, metadata={"help": "the cap of --policy-loss capped"})
    clip_range: float = field(default=0.2, metadata={"help": "the range of --policy-loss clip: the ratio pi/pi_old is clipped to [1 - CLIP_RANGE, 1 + CLIP_RANGE]"})
    max_kl: float = field(default=0.02, metadata={"help": "end an update's minibatch steps early once a minibatch shows KL(pi_old || pi) above this (0: every step is taken)"})
    value_after_kl: bool = field(default=False, metadata={"help": "once --max-kl ends an update's policy steps, its remaining minibatch steps train the value alone (the update ends there otherwise)"})
    epsilon: float = field(default=1e-5, metadata={"help": "epsilon of --optimizer rmsprop and adam, added to the root of the mean square: it bounds each step of a weight whose gradients were near 0 (rmsprop-2018 keeps 1e-5 inside the root)"})
    exact_2018: bool = field(default=False, metadata={"help": "every 2018 behaviour and hyperparameter at once: TF1 RMSProp, 13 x 2048 steps, time-limit cuts as terminal (options typed beside it still apply, e.g. --num-envs 8 --nsteps 512)"})
    # --- logging and checkpoints ---
    log_interval: int = field(default=10, metadata={"help": "updates between table rows and checkpoints"})
    keep_checkpoints: int = field(default=5, metadata={"help": "how many recent checkpoints to keep (the best is kept as well)"})
    run_name: str = field(default="", metadata={"help": "name of the run folder under runs_dir (default: game and start time)"})
    runs_dir: str = field(default="runs", metadata={"help": "folder that holds one folder per run"})
    models_dir: str = field(default="models", metadata={"help": "folder whose 'latest' file points at the newest checkpoint (what play.py loads)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar when the output is a terminal"})
    # --- watching a run (monitor.py; README, 'Watching a Sonic run') ---
    eval_every: int = field(default=0, metadata={"help": "updates between evaluations of the current weights on --eval-levels, in env processes of their own, the same seeds each time (0: none); each is a table row (eval_return_mean, eval_seconds) and a checkpoint, and 'best' then names the best evaluated checkpoint"})
    eval_episodes: int = field(default=5, metadata={"help": "episodes of each evaluation level per evaluation"})
    eval_levels: str = field(default="auto", metadata={"help": "'auto' (Sonic's held-out levels, else the trained game's level), 'held-out', 'train', 'default', or level names of the trained game, separated by commas"})
    video_every: int = field(default=0, metadata={"help": "updates between videos of one episode of the current policy (sampled actions, the first of --eval-levels) as runs/NAME/videos/update_N.gif and in TensorBoard's images (0: none)"})
    collapse_warning: float = field(default=0.1, metadata={"help": "warn (a line, and TensorBoard text) when the policy entropy falls below this fraction of its maximum ln(actions), or halves in one update: the policy has nearly stopped exploring; try a larger --ent-coef, a smaller --lr or a tighter --max-kl, or resume from an earlier checkpoint (0: never)"})
    # --- robustness ---
    restart_workers: bool = field(default=False, metadata={"help": "restart an env worker that dies or raises, and go on"})
    worker_timeout: float = field(default=60.0, metadata={"help": "seconds an env worker may take for one step before it counts as hung"})

    @property
    def updates_total(self) -> int:
        """Number of updates the run makes: total_timesteps // (nenvs * nsteps), as the seed."""
        return self.total_timesteps // (self.num_envs * self.nsteps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# What the 2018 scripts did where the project's defaults differ: learn(exact_2018=True) restores these ...
BEHAVIOUR_2018 = {"optimizer": "rmsprop-2018", "normalize_advantages": False, "policy_loss": "a2c", "epsilon": 1e-5,
                  "max_kl": 0.0, "value_after_kl": False, "truncation_as_terminal": True,
                  "life_loss_terminal": False, "life_loss_penalty": 0.0,
                  "noptepochs": 4, "nminibatches": 8, "lr_schedule": "constant"}
# ... and `agent.py --exact-2018` these as well (num_envs 0: one env per level, 13 on Sonic).
HYPERPARAMETERS_2018 = {"num_envs": 0, "nsteps": 2048, "gamma": 0.99, "lam": 0.95, "vf_coef": 0.5,
                        "ent_coef": 0.01, "lr": 2e-4, "max_grad_norm": 0.5}


def as_2018(config: TrainConfig) -> TrainConfig:
    """The same run settings with every hyperparameter and behaviour of the 2018 scripts."""
    return dataclasses.replace(config, exact_2018=True, **BEHAVIOUR_2018, **HYPERPARAMETERS_2018)


def validate(config: TrainConfig) -> None:
    """Raise ConfigError for a setting that cannot work. `num_envs` must already be resolved."""
    positive = ("nsteps", "total_timesteps", "lr", "noptepochs", "nminibatches", "log_interval",
                "keep_checkpoints", "max_grad_norm", "worker_timeout", "num_envs")
    for name in positive:   # NaN and infinity refused too: a NaN learning rate poisons the first update
        check_number(f"--{name.replace('_', '-')}", getattr(config, name), positive=True)
    check_number("--seed", config.seed, minimum=0)        # numpy and gymnasium refuse negative seeds
    check_number("--vf-coef", config.vf_coef, minimum=0)  # a negative weight would maximise the value error
    check_number("--ent-coef", config.ent_coef)
    check_number("--life-loss-penalty", config.life_loss_penalty, minimum=0)   # a negative one would pay for dying
    check_number("--eval-every", config.eval_every, minimum=0)
    check_number("--eval-episodes", config.eval_episodes, positive=True)
    check_number("--video-every", config.video_every, minimum=0)
    if not 0.0 <= config.collapse_warning < 1.0:   # also refuses NaN
        raise ConfigError(f"--collapse-warning must lie in [0, 1) (a fraction of ln(actions); 0: never), "
                          f"got {config.collapse_warning}")
    if not (0.0 <= config.gamma <= 1.0 and 0.0 <= config.lam <= 1.0):   # also refuses NaN
        raise ConfigError("--gamma and --lam must lie between 0 and 1")
    if config.run_name in (".", "..") or os.path.basename(config.run_name) != config.run_name:
        raise ConfigError(f"--run-name {config.run_name!r} must be a plain folder name (no '/', not '.' or '..'): "
                          "the run folder is --runs-dir/NAME; choose the parent folder with --runs-dir")
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
    validate_backend(config)
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
    check_number("--epsilon", config.epsilon, positive=True)
    validate_policy_loss(config)
    check_number("--max-kl", config.max_kl, minimum=0)
    if config.value_after_kl and not config.max_kl:
        raise ConfigError("--value-after-kl trains the value after the KL bound ends an update's policy steps: "
                          "give --max-kl above 0 as well, or drop --value-after-kl")


def validate_policy_loss(config: TrainConfig) -> None:
    """A known --policy-loss, and a setting of it that works. A run saved before --policy-loss keeps 0 in the
    setting of a loss it did not use (upgrade_saved), so only the chosen loss's setting must be above 0."""
    if config.policy_loss not in POLICY_LOSSES:
        raise ConfigError(f"--policy-loss must be one of {', '.join(POLICY_LOSSES)}, got {config.policy_loss!r}")
    check_number("--ratio-cap", config.ratio_cap, minimum=0, positive=config.policy_loss == "capped")
    if not (0.0 < config.clip_range < 1.0 or (config.clip_range == 0.0 and config.policy_loss != "clip")):
        raise ConfigError(f"--clip-range must lie between 0 and 1 (exclusive), got {config.clip_range}")


def validate_backend(config: TrainConfig) -> None:
    """The --backend options: a known backend; with ray, num_envs = num_workers x envs_per_worker."""
    if config.backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.backend == "local":
        if config.ray_address:
            raise ConfigError("--ray-address is for --backend ray: add --backend ray, or drop --ray-address")
        return
    check_number("--num-workers", config.num_workers, positive=True)
    check_number("--envs-per-worker", config.envs_per_worker, positive=True)
    if config.num_envs != config.num_workers * config.envs_per_worker:
        raise ConfigError(f"--num-envs {config.num_envs} differs from --num-workers {config.num_workers} x "
                          f"--envs-per-worker {config.envs_per_worker}: with --backend ray, leave --num-envs out")


def add_config_arguments(parser: argparse.ArgumentParser, defaults: Optional[TrainConfig] = None) -> None:
    """Add one --option per TrainConfig field, with the field's doc as help. The default is added to the help
    by the parser's formatter (cli.HelpFormatter: once, and not when it is '' or None)."""
    defaults = defaults or TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f.metadata["help"])
        else:
            kind = {int: int, float: float, str: str, "int": int, "float": float, "str": str}[f.type]
            parser.add_argument(flag, dest=f.name, type=kind, default=default, help=f.metadata["help"])


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


# ----------------------------------------------------------------------------- one run's settings

def resolve(typed: dict, explicit: set, saved: dict = None, allow_change: bool = False,
            source: str = "") -> TrainConfig:
    """A run's settings, in one order of precedence, each step overriding the one before:
        1. TrainConfig's defaults;
        2. a resumed run: its saved settings (`saved`, config.json of its checkpoint) in today's names
           (upgrade_saved), where a setting that an older version did not save takes the 2018 behaviour
           (BEHAVIOUR_2018: what that version trained with);
           a new run with --exact-2018: every 2018 value (as_2018);
        3. the options typed on the command line: `explicit` names them, `typed` holds every option's value.
    A resumed run that the typed options would change raises ConfigError unless `allow_change` (settings in
    RESUMABLE_WITHOUT_CHANGE change freely); a saved setting of the wrong type raises CheckpointError naming
    `source`; a typed setting of a policy loss the run does not use raises ConfigError (check_loss_settings).
    num_envs stays as typed (0: not chosen): with_envs decides it once the game is known."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    typed_values = {name: typed[name] for name in explicit if name in fields}
    if saved is None:
        config = TrainConfig(**{name: value for name, value in typed.items() if name in fields})
        config = dataclasses.replace(as_2018(config), **typed_values) if config.exact_2018 else config
        return check_loss_settings(config, explicit)
    mistyped = mistyped_settings(saved)
    if mistyped:
        raise CheckpointError(f"the checkpoint {source!r} is corrupt (state.json: the setting {mistyped[0]}); "
                              "resume from an earlier one in the same folder")
    saved = upgrade_saved(saved)
    values = {name: value for name, value in BEHAVIOUR_2018.items() if name not in saved}
    values.update({name: saved[name] for name in fields if name in saved})
    config = check_loss_settings(TrainConfig(**dict(values, **typed_values)), explicit)
    changes = config_differences(saved, config)
    if changes and not allow_change:
        listed = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in changes)
        raise ConfigError(f"--resume would change the run's settings ({listed}): add --allow-config-change "
                          "if that is deliberate, or drop those options")
    return config


def upgrade_saved(saved: dict) -> dict:
    """The settings of a run saved by an earlier version, in today's names. Before --policy-loss, the loss
    followed from two settings, the clip taking precedence: clip_range > 0 (PPO's clip), else ratio_cap > 0
    (the capped loss), else A2C's; a run older than both trained with A2C's loss."""
    if "policy_loss" in saved:
        return saved
    loss = "clip" if saved.get("clip_range") else "capped" if saved.get("ratio_cap") else "a2c"
    return dict(saved, policy_loss=loss)


def check_loss_settings(config: TrainConfig, explicit: set) -> TrainConfig:
    """Refuse a typed setting that the run's policy loss does not read (--clip-range without --policy-loss
    clip would otherwise change nothing, without a word). -> config"""
    for name, loss in LOSS_PARAMETERS.items():
        if name in explicit and config.policy_loss != loss:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} is a setting of --policy-loss {loss}, but this run's loss is "
                              f"{config.policy_loss!r}: add --policy-loss {loss}, or drop {flag}")
    return config


def mistyped_settings(saved: dict) -> list:
    """The settings of a saved run config whose value is not of its TrainConfig field's type, as
    "nsteps 'x' (not int)" (a corrupt or hand-edited state.json: resolve could not even compare them)."""
    kinds = {"int": int, "float": float, "str": str, "bool": bool, int: int, float: float, str: str, bool: bool}
    out = []
    for f in dataclasses.fields(TrainConfig):
        kind, value = kinds.get(f.type), saved.get(f.name)
        if kind is None or f.name not in saved:
            continue
        accepted = (int, float) if kind is float else kind   # JSON writes 1.0 as 1.0, but a user may write 1
        if not isinstance(value, accepted) or isinstance(value, bool) != (kind is bool):
            out.append(f"{f.name} {value!r} (not {kind.__name__})")
    return out


def with_envs(config: TrainConfig, game: str, chosen_levels: list, num_envs_typed: bool) -> TrainConfig:
    """The settings with num_envs decided, then validated (ConfigError, one line, for what cannot work).
    --backend ray: num_workers x envs_per_worker (a typed --num-envs must agree). Local: as typed, else one env
    per chosen level, else env.LEVELS' 13 on Sonic (and with --exact-2018, as the 2018 scripts), else 8 on a
    game with one level: the size the learning benchmark measures, and plenty for 2 cores."""
    import env as envs
    if config.backend == "ray":
        num_envs = config.num_envs if num_envs_typed else config.num_workers * config.envs_per_worker
    elif config.num_envs:
        num_envs = config.num_envs
    elif chosen_levels:
        num_envs = len(chosen_levels)
    else:
        num_envs = len(envs.LEVELS) if game == envs.SONIC_GAME or config.exact_2018 else 8
    config = dataclasses.replace(config, num_envs=num_envs)
    validate(config)
    if config.vec_env == "dummy" and config.num_envs > 1:
        raise ConfigError("--vec-env dummy runs every env in this process, and stable-retro allows one emulator "
                          "per process: use --vec-env subproc or --num-envs 1")
    return config
