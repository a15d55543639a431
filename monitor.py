"""What a training run shows of itself besides its table: the current weights scored on held-out levels
(`--eval-every`), each level's figures on a run over several levels, a video of the policy now and then
(`--video-every`), and a warning when the policy's entropy collapses (`--collapse-warning`).

Evaluation and video episodes run in env processes of their own (one emulator per process, as stable-retro
requires), so the training envs' episodes go on undisturbed, and with seeds of their own, the same at every
evaluation: two evaluations differ only by the weights.
"""
import functools
import math
import os
import time

import numpy as np

from errors import ConfigError

EVAL_SEED_OFFSET = 10_000   # evaluation env j is seeded seed + 10,000 + j: apart from the training envs' seed + i
EVAL_STREAM = 0xE7A1        # tags the evaluation's action-noise streams apart from the training ones
VIDEO_STREAM = 0x71DE0      # ... and the video episodes' streams
MAX_EVAL_ENVS = 8           # evaluation episodes played at once (one process each)
VIDEO_SCALE = 2             # a video keeps every VIDEO_SCALE-th pixel of each row and column
VIDEO_FRAME_EVERY = 3       # ... and every 3rd emulator frame: 20 frames/s, the game's speed in a GIF


# ----------------------------------------------------------------------------- the evaluation levels

def evaluation_levels(spec: str, game: str) -> tuple:
    """--eval-levels as typed -> (game, [levels]). 'auto': the held-out levels on Sonic, else the trained game's
    own level list; 'held-out', 'train' and 'default' as evaluate.py reads them; else level names of the trained
    game, separated by commas. GameError / ConfigError (one line) for a Sonic set without the ROM or an
    unknown level."""
    import env as envs
    from evaluate import LEVEL_SETS, resolve_level_set
    if spec == "auto":
        return (game, list(envs.HELD_OUT_LEVELS)) if game == envs.SONIC_GAME else (game, envs.default_levels(game))
    if spec in LEVEL_SETS:
        return resolve_level_set(spec)
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--eval-levels {spec!r}: give 'auto', {', '.join(LEVEL_SETS)} or level names of the "
                          "trained game separated by commas")
    envs.check_levels(game, names)
    return game, names


# ----------------------------------------------------------------------------- held-out evaluation

def first_episodes(policy, env_fns, seed: int, rngs, timeout: float, names=None) -> list:
    """Play the first episode of each env of `env_fns` (one process each, env i seeded seed + i) with `policy`
    (step_neglogp(obs, rngs)), actions sampled from `rngs` (one generator per env). Envs whose episode has
    ended go on stepping until the last one ends; their later episodes are not counted.
    -> [len(env_fns)] episode dicts {'r', 'l'[, 'progress', 'level']}, in the order of env_fns."""
    from vec_env import SubprocVecEnv
    venv = SubprocVecEnv(env_fns, seed=seed, names=names, timeout=timeout)
    try:
        obs = venv.reset()                                            # [n, 96, 96, 4] uint8
        found = [None] * len(env_fns)
        while any(episode is None for episode in found):
            actions, _values, _neglogp = policy.step_neglogp(obs, rngs=rngs)
            obs, _rewards, _dones, infos = venv.step(actions)
            for i, info in enumerate(infos):
                if found[i] is None and "episode" in info:
                    found[i] = info["episode"]
        return found
    finally:
        venv.close()


def mean_or_nan(values) -> float:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else float("nan")


class Evaluation:
    """Scores the current weights: `episodes` episodes of every level, the same seeds each time.

    Episode k of level l is job j = l * episodes + k: its env is seeded seed + EVAL_SEED_OFFSET + j and samples
    its actions from a generator drawn from (seed, EVAL_STREAM, j), however the jobs are batched.
    """

    def __init__(self, game: str, levels: list, episodes: int, seed: int, timeout: float = 60.0, make_level=None):
        import env as envs
        self.game, self.levels, self.episodes, self.seed, self.timeout = game, list(levels), episodes, seed, timeout
        self.make_level = make_level or envs.make_level    # (game, level) -> a wrapped env; tests pass a fake one
        self.jobs = [level for level in self.levels for _ in range(episodes)]   # job j plays level jobs[j]
        self.with_progress = game == envs.SONIC_GAME

    def columns(self) -> list:
        """The table columns an evaluation fills."""
        return ["eval_return_mean"] + (["eval_progress_mean"] if self.with_progress else []) + ["eval_seconds"]

    def run(self, policy) -> dict:
        """-> {'eval_return_mean', ['eval_progress_mean'], 'eval_seconds'} and, per level, 'eval/<level>/...'
        figures; the mean pools every episode (each level has the same number)."""
        started = time.monotonic()
        played = []
        for first in range(0, len(self.jobs), MAX_EVAL_ENVS):
            jobs = range(first, min(first + MAX_EVAL_ENVS, len(self.jobs)))
            fns = [functools.partial(self.make_level, self.game, self.jobs[j]) for j in jobs]
            rngs = [np.random.default_rng(np.random.SeedSequence([self.seed, EVAL_STREAM, j])) for j in jobs]
            names = [f"evaluation: {self.game}/{self.jobs[j]}" for j in jobs]
            played += first_episodes(policy, fns, self.seed + EVAL_SEED_OFFSET + first, rngs, self.timeout, names)
        figures = {"eval_return_mean": mean_or_nan(e["r"] for e in played)}
        if self.with_progress:
            figures["eval_progress_mean"] = mean_or_nan(e.get("progress", 0.0) for e in played)
        if len(self.levels) > 1:
            for level in self.levels:
                of_level = [e for e, job_level in zip(played, self.jobs) if job_level == level]
                figures.update(level_figures(f"eval/{level}", of_level, self.with_progress))
        figures["eval_seconds"] = round(time.monotonic() - started, 1)
        return figures


def level_figures(prefix: str, episodes: list, with_progress: bool) -> dict:
    """Episode dicts of one level -> {'<prefix>/return_mean', ['<prefix>/progress_mean'], '<prefix>/episodes'}."""
    figures = {f"{prefix}/return_mean": mean_or_nan(e["r"] for e in episodes)}
    if with_progress:
        figures[f"{prefix}/progress_mean"] = mean_or_nan(e.get("progress", 0.0) for e in episodes)
    figures[f"{prefix}/episodes"] = len(episodes)
    return figures


def training_level_figures(level_episodes: dict) -> dict:
    """level -> its recent training episodes ({'r', 'l'[, 'progress']}) -> 'levels/<level>/...' figures, for a
    run over several levels; {} for a run over one."""
    if len(level_episodes) < 2:
        return {}
    figures = {}
    for level, episodes in sorted(level_episodes.items()):
        with_progress = any("progress" in e for e in episodes)
        figures.update(level_figures(f"levels/{level}", episodes, with_progress))
    return figures


# ----------------------------------------------------------------------------- videos

class VideoSink:
    """Receives the emulator frames of one env (env.RecordFrames) in its own process and writes its first
    episode to `path` as a GIF when the env resets after it; every later frame is dropped. Keeps every
    VIDEO_FRAME_EVERY-th frame at 1/VIDEO_SCALE of the size, so a long episode stays small in memory."""

    def __init__(self, path: str):
        self.path = path
        self.frames, self.count, self.done = [], 0, False

    def new_episode(self, frame) -> None:
        if self.frames and not self.done:   # the first episode has ended: the env resets after it
            from recording import GENESIS_FPS, write_video
            write_video(self.path, self.frames, fps=GENESIS_FPS // VIDEO_FRAME_EVERY, gif_every=1)
            self.frames, self.done = [], True
        elif not self.done:
            self.add(frame)

    def add(self, frame) -> None:
        if not self.done and self.count % VIDEO_FRAME_EVERY == 0:
            self.frames.append(np.ascontiguousarray(frame[::VIDEO_SCALE, ::VIDEO_SCALE]))   # [H/2, W/2, 3] uint8
        self.count += 1


def recording_env(make_level, game: str, level: str, path: str):
    """A wrapped env of `level` whose first episode is written to `path` (built in the env's own process)."""
    return make_level(game, level, frame_sink=VideoSink(path))


def record_video(policy, game: str, level: str, path: str, seed: int, timeout: float = 60.0, make_level=None) -> dict:
    """Play one episode of `level` with `policy` (sampled actions) in a process of its own and write it to
    `path` (.gif). -> the episode dict {'r', 'l', ...}."""
    import env as envs
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fn = functools.partial(recording_env, make_level or envs.make_level, game, level, path)
    rng = np.random.default_rng(np.random.SeedSequence([seed, VIDEO_STREAM]))
    return first_episodes(policy, [fn], seed + EVAL_SEED_OFFSET - 1, [rng], timeout, [f"video: {game}/{level}"])[0]


# ----------------------------------------------------------------------------- policy collapse

class CollapseWatch:
    """Says when the policy stops exploring: its entropy below `fraction` x ln(actions) (said once until it
    rises above again), or halved within one update. fraction 0 turns it off."""

    def __init__(self, nactions: int, fraction: float):
        self.max_entropy = math.log(nactions)
        self.floor = fraction * self.max_entropy
        self.enabled = fraction > 0
        self.previous = None
        self.below = False

    def check(self, entropy: float):
        """The entropy of the update just trained -> a one-line warning, or None."""
        previous, self.previous = self.previous, entropy
        if not self.enabled:
            return None
        advice = ("the policy has nearly stopped exploring; try a larger --ent-coef, a smaller --lr or a tighter "
                  "--max-kl, or resume from an earlier checkpoint (README, 'Training logs')")
        if entropy < self.floor:
            said, self.below = self.below, True
            return None if said else (f"warning: policy entropy {entropy:.3g} is below {self.floor / self.max_entropy:.0%} "
                                      f"of its maximum ln(actions) = {self.max_entropy:.3g}: {advice}")
        self.below = False
        if previous is not None and entropy < 0.5 * previous:
            return f"warning: policy entropy fell from {previous:.3g} to {entropy:.3g} in one update: {advice}"
        return None
