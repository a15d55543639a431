"""Sonic environments as the 2018 scripts built them, and the embedded default game.

Pick the levels you train on by editing `LEVELS` (one environment, and one process, per level).
`make_train_0()` ... `make_train_12()` build one environment each; `make_test()` builds the held-out level.
Without the Sonic ROM the same functions build `Airstriker-Genesis-v0`, which ships inside stable-retro.

Wrapper chain of one environment, innermost first (the Retro Contest's base env, then the seed's wrappers):
    stable_retro.make(game, state, scenario='contest')    RGB frames [224, 320, 3] uint8
    StickyFrameSkip(4 frames, stickprob 0.25)
    LifeLoss                                              info['life_lost'] on a step whose 'lives' count fell
    TimeLimit(4500 agent steps)
    EpisodeStats                                          raw episode return / length / level into info['episode']
    ActionsDiscretizer                                    Discrete(7) -> 12 Genesis buttons
    RewardScaler(0.01)
    PreprocessFrame                                       [96, 96, 1] uint8 gray
    FrameStack(4)                                         [96, 96, 4] uint8
    AllowBacktracking                                     reward = max(0, cumulative - best cumulative)
An Atari game (`ALE/<Name>-v5`, through ale-py) keeps ALE's own frame skip 4 and sticky actions 0.25 and its
minimal action set, then LifeLoss, TimeLimit(27,000), EpisodeStats, RewardScaler, PreprocessFrame, FrameStack
(the discretizer and the backtracking reward are Sonic's).
"""
import functools

import cv2
import gymnasium as gym
import numpy as np

import stable_retro
from errors import ConfigError, GameError  # noqa: F401  (raised here; env.GameError as before)
from vec_env import DummyVecEnv, SubprocVecEnv  # noqa: F401  (re-exported: env.SubprocVecEnv, as the seed)

# ---------------------------------------------------------------------------------------------------------
# The level list: edit here to choose what to train on. One env (one emulator process) per entry.
SONIC_GAME = "SonicTheHedgehog-Genesis-v0"
LEVELS = [
    "SpringYardZone.Act3", "SpringYardZone.Act2", "GreenHillZone.Act3", "GreenHillZone.Act1",
    "StarLightZone.Act2", "StarLightZone.Act1", "MarbleZone.Act2", "MarbleZone.Act1", "MarbleZone.Act3",
    "ScrapBrainZone.Act2", "LabyrinthZone.Act2", "LabyrinthZone.Act1", "LabyrinthZone.Act3",
]
TEST_LEVEL = "GreenHillZone.Act2"
# The Retro Contest's held-out Sonic 1 levels (test split of "Gotta Learn Fast", Nichol et al. 2018).
HELD_OUT_LEVELS = ["SpringYardZone.Act1", "GreenHillZone.Act2", "StarLightZone.Act3", "ScrapBrainZone.Act1"]
# ---------------------------------------------------------------------------------------------------------

DEFAULT_GAME = "Airstriker-Genesis-v0"   # ships inside stable-retro: used when the Sonic ROM is not imported
DEFAULT_STATE = "Level1"
FRAME_SKIP = 4
STICK_PROB = 0.25
MAX_EPISODE_STEPS = 4500
REWARD_SCALE = 0.01
FRAME_SIZE = 96
STACK = 4
SONIC_FINISH_REWARD = 9000.0   # the contest scenario pays 9000 for x-progress through a whole level
# Atari games (ale-py, whose wheel ships the ROMs): ALE's own frame skip and sticky actions, the Retro Contest's
# values; one level; at most 27,000 agent steps (108,000 frames) an episode, the usual Atari limit
ATARI_PREFIX = "ALE/"
ATARI_LEVEL = "Default"
ATARI_MAX_EPISODE_STEPS = 27_000

# The seed's 7 actions, as combinations of Genesis buttons.
ACTIONS = [["LEFT"], ["RIGHT"], ["LEFT", "DOWN"], ["RIGHT", "DOWN"], ["DOWN"], ["DOWN", "B"], ["B"]]

ROM_HELP = ("import it with `python -m stable_retro.import DIR`, where DIR holds a ROM file whose SHA-1 matches "
            f"stable-retro's rom.sha for {SONIC_GAME} (owners of SEGA Mega Drive & Genesis Classics on Steam: "
            "SONIC_W.68K in the game's uncompressed ROMs folder)")


# ----------------------------------------------------------------------------- games and levels

def rom_imported(game: str) -> bool:
    """True when stable-retro finds a ROM file for `game` (an Atari game's ROM ships in ale-py's wheel)."""
    if is_atari(game):
        return True
    try:
        stable_retro.data.get_romfile_path(game)
        return True
    except FileNotFoundError:
        return False


def is_atari(game: str) -> bool:
    return game.startswith(ATARI_PREFIX)


def register_atari():
    """Register ale-py's games with gymnasium (loaded only for an Atari game); -> the ale_py module."""
    import ale_py
    gym.register_envs(ale_py)
    return ale_py


def atari_ids() -> list:
    """The ALE/<Name>-v5 ids ale-py registers with gymnasium."""
    register_atari()
    return sorted(name for name in gym.registry if name.startswith(ATARI_PREFIX) and name.endswith("-v5"))


def resolve_game(choice: str = "auto") -> str:
    """'auto' -> Sonic when its ROM is imported, else the default game; 'sonic' -> Sonic or GameError;
    'ALE/<Name>-v5' -> that Atari game, or GameError saying what is valid."""
    if choice == "auto":
        return SONIC_GAME if rom_imported(SONIC_GAME) else DEFAULT_GAME
    if is_atari(choice):
        if choice not in atari_ids():
            raise GameError(f"unknown Atari game {choice!r}: give ALE/<Name>-v5 with a game ale-py ships, such as "
                            "ALE/Pong-v5, ALE/SpaceInvaders-v5 or ALE/Qbert-v5")
        return choice
    game = SONIC_GAME if choice.lower() in ("sonic", SONIC_GAME.lower()) else choice
    if game not in stable_retro.data.list_games(stable_retro.data.Integrations.ALL):
        raise GameError(f"unknown game {choice!r}: use 'auto', 'sonic' or a game id that stable-retro knows, "
                        f"such as {DEFAULT_GAME}")
    if not rom_imported(game):
        if game == SONIC_GAME:
            raise GameError(f"the Sonic ROM is not imported: {ROM_HELP}")
        raise GameError(f"the ROM of {game} is not imported: import it with `python -m stable_retro.import DIR`")
    return game


def fallback_notice(choice: str, game: str) -> str:
    """One short line for the entry scripts when 'auto' fell back to the default game, else ''. How to import
    the ROM is in each script's --help and the README (it used to be here, repeated on every call)."""
    if choice == "auto" and game == DEFAULT_GAME:
        return f"Sonic ROM not imported: using the embedded default game {DEFAULT_GAME} (see --help to import it)."
    return ""


def game_levels(game: str) -> list:
    """Every level (state) of `game`: an Atari game has one."""
    if is_atari(game):
        return [ATARI_LEVEL]
    return stable_retro.data.list_states(game, stable_retro.data.Integrations.ALL)


def default_levels(game: str) -> list:
    """The training levels of `game`: LEVELS for Sonic, the default state otherwise."""
    if game == SONIC_GAME:
        return list(LEVELS)
    if is_atari(game):
        return [ATARI_LEVEL]
    if game == DEFAULT_GAME:
        return [DEFAULT_STATE]
    states = stable_retro.data.list_states(game, stable_retro.data.Integrations.ALL)
    return states[:1] if states else [stable_retro.State.DEFAULT]


def check_levels(game: str, levels: list) -> None:
    """Raise GameError naming the valid states when a level is not a state of `game`."""
    valid = game_levels(game)
    for level in levels:
        if level not in valid:
            raise GameError(f"unknown state {level!r} for {game}: valid states are {', '.join(valid)}")


def chosen_levels(game: str, spec: str) -> list:
    """--levels as typed ('A,B'; '' chooses none) -> the level names, each checked to be a state of `game`
    (GameError naming the valid ones); ConfigError for a value that names no level at all."""
    chosen = [level.strip() for level in spec.split(",") if level.strip()]
    if spec.strip() and not chosen:
        raise ConfigError(f"--levels {spec!r} names no level: give level names separated by commas")
    check_levels(game, chosen)
    return chosen


def level_for(env_idx: int, game: str, levels=None) -> str:
    """The level env `env_idx` plays: the level list cycled (the default game repeats its one level)."""
    levels = levels or default_levels(game)
    return levels[env_idx % len(levels)]


# ----------------------------------------------------------------------------- wrappers

def _step_without_screen(retro_env, action) -> tuple:
    """Advance a RetroEnv one frame without copying its screen out: (reward, terminated)."""
    for player, buttons in enumerate(retro_env.action_to_array(action)):
        retro_env.em.set_button_mask(buttons, player)
    retro_env.em.step()
    retro_env.data.update_ram()
    return retro_env.data.current_reward(), retro_env.data.is_done()


STICKY_STREAM_TAG = 0x571C4   # marks the sticky-frame generator's seed, so it owns a stream (see sticky_generator)


def sticky_generator(seed: int) -> np.random.Generator:
    """The sticky-frame generator of an env reset with `seed`: its own stream, SeedSequence([seed, tag]). Env i is
    reset with seed + i, so seeding with default_rng(seed) would give env 0 the very stream of the learner's
    default_rng(seed) (model.Learner): the two would draw the same numbers."""
    return np.random.default_rng(np.random.SeedSequence([seed, STICKY_STREAM_TAG]))


class StickyFrameSkip(gym.Wrapper):
    """Hold each action for `skip` frames; with probability `stickprob` the first frame keeps the previous one.

    Only the last frame's screen is read; frames in between are emulated without copying the screen.
    """

    def __init__(self, env, skip=FRAME_SKIP, stickprob=STICK_PROB):
        super().__init__(env)
        self.skip, self.stickprob = skip, stickprob
        self.rng = np.random.default_rng()
        self.held_action = None
        self._blind = isinstance(env, stable_retro.RetroEnv) and env.render_mode != "human"

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = sticky_generator(seed)
        self.held_action = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        total_reward = 0.0
        for frame in range(self.skip):
            sticky = frame == 0 and self.held_action is not None and self.rng.random() < self.stickprob
            if not sticky:
                self.held_action = action
            if self._blind and frame < self.skip - 1:
                reward, terminated = _step_without_screen(self.env, self.held_action)
                total_reward += reward
                if terminated:
                    return self.env._update_obs(), total_reward, True, False, dict(self.env.data.lookup_all())
                continue
            obs, reward, terminated, truncated, info = self.env.step(self.held_action)
            total_reward += reward
            if terminated or truncated:
                break
        return obs, total_reward, terminated, truncated, info


class LifeLoss(gym.Wrapper):
    """info['life_lost'] = True on a step that cost a life: the emulator's 'lives' variable fell (Airstriker has 4,
    counted 3 to 0). The episode goes on; `--life-loss-terminal` cuts the value chain there (model.collect).
    A game without a 'lives' variable never sets it."""

    def __init__(self, env):
        super().__init__(env)
        self.lives = None   # the last count seen in this episode

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.lives = info.get("lives")
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = info.get("lives")
        if lives is not None and self.lives is not None and lives < self.lives:
            info = dict(info, life_lost=True)
        self.lives = lives
        return obs, reward, terminated, truncated, info


class EpisodeStats(gym.Wrapper):
    """On the last step of an episode, info['episode'] = {'r': raw return, 'l': length, 'progress': ...,
    'level': ...}.

    Placed before any reward scaling, so the return is in the game's own units. `progress` (Sonic only) is
    the best fraction of the level reached: the contest reward pays `finish_reward` for the whole level.
    `level` (when given) names the level, so that a run on several levels can report each one's figures.
    """

    def __init__(self, env, finish_reward=None, level=None):
        super().__init__(env)
        self.finish_reward = finish_reward
        self.level = level
        self.episode_return, self.episode_length, self.best_return = 0.0, 0, 0.0

    def reset(self, **kwargs):
        self.episode_return, self.episode_length, self.best_return = 0.0, 0, 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        self.episode_length += 1
        self.best_return = max(self.best_return, self.episode_return)
        if terminated or truncated:
            episode = {"r": self.episode_return, "l": self.episode_length, "truncated": bool(truncated and not terminated)}
            if self.finish_reward:
                episode["progress"] = min(1.0, self.best_return / self.finish_reward)
            if self.level is not None:
                episode["level"] = self.level
            info = dict(info, episode=episode)
        return obs, reward, terminated, truncated, info


class ActionsDiscretizer(gym.ActionWrapper):
    """Discrete(len(combos)) -> the emulator's button array; button indices read from the emulator."""

    def __init__(self, env, combos=ACTIONS):
        super().__init__(env)
        buttons = list(env.unwrapped.buttons)   # e.g. ['B', 'A', 'MODE', 'START', 'UP', 'DOWN', 'LEFT', ...]
        self.button_arrays = []                  # [nactions] of [nbuttons] int8
        for combo in combos:
            pressed = np.zeros(len(buttons), dtype=np.int8)
            for button in combo:
                pressed[buttons.index(button)] = 1
            self.button_arrays.append(pressed)
        self.action_space = gym.spaces.Discrete(len(combos))

    def action(self, action):
        return self.button_arrays[int(action)].copy()


class RewardScaler(gym.RewardWrapper):
    """reward * scale: keeps returns in a range the value head learns easily."""

    def __init__(self, env, scale=REWARD_SCALE):
        super().__init__(env)
        self.scale = scale

    def reward(self, reward):
        return reward * self.scale


class PreprocessFrame(gym.ObservationWrapper):
    """RGB [H, W, 3] -> gray, area-resized to [size, size, 1] uint8."""

    def __init__(self, env, size=FRAME_SIZE):
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 1), dtype=np.uint8)

    def observation(self, frame):  # [H, W, 3] uint8 -> [size, size, 1] uint8
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return cv2.resize(gray, (self.size, self.size), interpolation=cv2.INTER_AREA)[:, :, None]


class FrameStack(gym.Wrapper):
    """The last k frames on the last axis, [H, W, k]; after a reset the first frame fills every slot."""

    def __init__(self, env, k=STACK):
        super().__init__(env)
        height, width, channels = env.observation_space.shape
        self.k = k
        self.stack = np.zeros((height, width, channels * k), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, self.stack.shape, dtype=np.uint8)

    def reset(self, **kwargs):
        frame, info = self.env.reset(**kwargs)     # [H, W, C]
        self.stack[:] = np.tile(frame, (1, 1, self.k))
        return self.stack.copy(), info

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        channels = frame.shape[-1]
        self.stack[:, :, :-channels] = self.stack[:, :, channels:]
        self.stack[:, :, -channels:] = frame
        return self.stack.copy(), reward, terminated, truncated, info


class AllowBacktracking(gym.Wrapper):
    """reward = max(0, cumulative reward - best cumulative so far): going back costs nothing, nor pays twice."""

    def __init__(self, env):
        super().__init__(env)
        self.cumulative, self.best = 0.0, 0.0

    def reset(self, **kwargs):
        self.cumulative, self.best = 0.0, 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.cumulative += reward
        reward = max(0.0, self.cumulative - self.best)
        self.best = max(self.best, self.cumulative)
        return obs, reward, terminated, truncated, info


class RecordFrames(gym.Wrapper):
    """Hands every emulator frame, full colour [H, W, 3] uint8 as a person sees it, to `sink`:
    sink.new_episode(first_frame) on reset, sink.add(frame) on each step (see recording.EpisodeFrames)."""

    def __init__(self, env, sink):
        super().__init__(env)
        self.sink = sink

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.sink.new_episode(obs.copy())
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.sink.add(obs.copy())
        return obs, reward, terminated, truncated, info


def wrap(base_env, finish_reward=None, max_episode_steps=MAX_EPISODE_STEPS, frame_sink=None, level=None):
    """The full chain around a one-frame emulator env (a RetroEnv, or a fake with `.buttons` in tests).
    frame_sink, when given, receives every emulator frame (see RecordFrames); level names the episodes'
    level in their statistics (EpisodeStats)."""
    if frame_sink is not None:
        base_env = RecordFrames(base_env, frame_sink)
    env = LifeLoss(StickyFrameSkip(base_env))
    env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    env = EpisodeStats(env, finish_reward=finish_reward, level=level)
    env = ActionsDiscretizer(env)
    env = RewardScaler(env)
    env = PreprocessFrame(env)
    env = FrameStack(env)
    return AllowBacktracking(env)


# ----------------------------------------------------------------------------- building environments

def make_retro(game: str, level: str, render_mode=None):
    """The base emulator env: the contest scenario for Sonic, the game's own scenario otherwise."""
    scenario = "contest" if game == SONIC_GAME else None
    return stable_retro.make(game, state=level, scenario=scenario, render_mode=render_mode,
                             inttype=stable_retro.data.Integrations.ALL)


def make_atari(game: str, render_mode=None):
    """An ALE game with ALE's frame skip (4) and sticky actions (0.25) and its minimal action set."""
    ale_py = register_atari()
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)   # no banner from every env process
    return gym.make(game, frameskip=FRAME_SKIP, repeat_action_probability=STICK_PROB, full_action_space=False,
                    render_mode=render_mode)


def wrap_atari(base_env, max_episode_steps=ATARI_MAX_EPISODE_STEPS, frame_sink=None, level=None):
    """The chain around an ALE env (frame skip and sticky actions are ALE's own): no button discretizer and no
    backtracking reward, which are Sonic's; the lives, the limit, the statistics, the scale and the frames as
    for every game."""
    if frame_sink is not None:
        base_env = RecordFrames(base_env, frame_sink)
    env = gym.wrappers.TimeLimit(LifeLoss(base_env), max_episode_steps=max_episode_steps)
    env = EpisodeStats(env, level=level)
    return FrameStack(PreprocessFrame(RewardScaler(env)))


def make_level(game: str, level: str, render_mode=None, frame_sink=None):
    """One fully wrapped environment of `game` at `level`: observations [96, 96, 4] uint8; 7 actions (an Atari
    game: its own minimal set)."""
    if is_atari(game):
        return wrap_atari(make_atari(game, render_mode), frame_sink=frame_sink, level=level)
    finish = SONIC_FINISH_REWARD if game == SONIC_GAME else None
    return wrap(make_retro(game, level, render_mode), finish_reward=finish, frame_sink=frame_sink, level=level)


def make_env(env_idx: int, game: str = "auto", levels=None, render_mode=None):
    """Environment number `env_idx` of the level list (LEVELS, or `levels` when given)."""
    game = resolve_game(game)
    return make_level(game, level_for(env_idx, game, levels), render_mode)


def env_fns(num_envs: int, game: str = "auto", levels=None) -> list:
    """Picklable factories for `num_envs` environments cycling through the level list."""
    return [functools.partial(make_env, idx, game, levels) for idx in range(num_envs)]


def env_names(num_envs: int, game: str, levels=None) -> list:
    """'game/level' for each env, as error messages and logs name them."""
    game = resolve_game(game)
    return [f"{game}/{level_for(idx, game, levels)}" for idx in range(num_envs)]


def build_vec_env(config, game: str, levels: list):
    """The envs a run samples from (config: config.TrainConfig, num_envs decided): env i plays level
    i mod len(levels) and is seeded seed + i, in SubprocVecEnv's processes, in this process (DummyVecEnv), or on
    Ray's rollout workers (ray_backend.RaySampler: W x E envs; the ROM is checked on every worker machine)."""
    fns, names = env_fns(config.num_envs, game, levels), env_names(config.num_envs, game, levels)
    if config.backend == "ray":
        from ray_backend import RaySampler
        return RaySampler(fns, config.num_workers, config.envs_per_worker, seed=config.seed,
                          address=config.ray_address, names=names, game=game, hang_timeout=config.worker_timeout)
    if config.vec_env == "dummy":
        return DummyVecEnv(fns, seed=config.seed, names=names)
    return SubprocVecEnv(fns, seed=config.seed, names=names, restart=config.restart_workers,
                         timeout=config.worker_timeout)


def make_test(game: str = "auto", render_mode=None):
    """The held-out level (GreenHillZone.Act2); the default game's level when Sonic is not imported."""
    game = resolve_game(game)
    return make_level(game, TEST_LEVEL if game == SONIC_GAME else default_levels(game)[0], render_mode)


# One factory per training level, as the seed: edit LEVELS above to change what they build.
def make_train_0(): return make_env(0)
def make_train_1(): return make_env(1)
def make_train_2(): return make_env(2)
def make_train_3(): return make_env(3)
def make_train_4(): return make_env(4)
def make_train_5(): return make_env(5)
def make_train_6(): return make_env(6)
def make_train_7(): return make_env(7)
def make_train_8(): return make_env(8)
def make_train_9(): return make_env(9)
def make_train_10(): return make_env(10)
def make_train_11(): return make_env(11)
def make_train_12(): return make_env(12)

