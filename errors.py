"""The errors the entry scripts turn into one clear line and a non-zero exit (never a traceback).

Kept apart from the modules that raise them so that the entry scripts can name them without importing
TensorFlow first.
"""
import sys

from checkpoint import CheckpointError
from config import ConfigError
from env import GameError
from recording import VideoError
from vec_env import WorkerError

USER_ERRORS = (ConfigError, GameError, CheckpointError, VideoError)   # bad input or an unusable file: exit 2
RUN_ERRORS = (WorkerError, FloatingPointError)   # the run failed (model.NonFiniteError is a FloatingPointError): exit 1


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
