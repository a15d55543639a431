"""The errors the entry scripts turn into one clear line and a non-zero exit (never a traceback).

At the bottom of the project: this module imports none of it, so naming an error loads no emulator, OpenCV
or TensorFlow. The modules that raise these errors import them from here (and so still offer them under their
old names: env.GameError, config.ConfigError, checkpoint.CheckpointError, recording.VideoError,
vec_env.WorkerError). `check_number` is the one check of a numeric option that every script uses.
"""
import math
import sys


class ConfigError(ValueError):
    """A setting or option value that cannot work; the message says which and what to do."""


class GameError(ValueError):
    """A game, level or ROM that cannot be used; the message says what to do."""


class CheckpointError(RuntimeError):
    """A checkpoint, or another file of a run folder, that cannot be read or written; the message says which
    and what to do."""


class VideoError(ValueError):
    """A video that cannot be written; the message says what to do."""


class WorkerError(RuntimeError):
    """An env worker raised, died or hung; the message (one line) names the env, its level and the cause;
    `details` holds the worker's traceback when it raised."""

    def __init__(self, env_idx: int, name: str, cause: str, details: str = ""):
        self.env_idx, self.name, self.cause, self.details = env_idx, name, cause, details
        super().__init__(f"env {env_idx} ({name}) failed: {cause}")


USER_ERRORS = (ConfigError, GameError, CheckpointError, VideoError)   # bad input or an unusable file: exit 2
RUN_ERRORS = (WorkerError, FloatingPointError)   # the run failed (model.NonFiniteError is a FloatingPointError): exit 1


def check_number(option: str, value, minimum=None, positive: bool = False, error=ConfigError) -> None:
    """Raise `error` unless `value` is a finite number (NaN and infinity are refused), above 0 when `positive`,
    at least `minimum` when given. Every comparison with NaN is False, so each test states what must hold:
    `not value > 0`, never `value <= 0` (which lets NaN through)."""
    if not (isinstance(value, int) or math.isfinite(value)):
        raise error(f"{option} must be a finite number, got {value}")
    if positive and not value > 0:
        raise error(f"{option} must be positive, got {value}")
    if minimum is not None and not value >= minimum:
        raise error(f"{option} must be {minimum} or more, got {value}")


def run_command(action, *args, user_errors=(), interrupted="stopped") -> int:
    """Run action(*args) -> exit code (its own if it returns an int, else 0); a known error becomes one
    'error: ...' line on stderr and its exit code."""
    try:
        result = action(*args)
        return result if isinstance(result, int) else 0
    except USER_ERRORS + tuple(user_errors) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RUN_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
