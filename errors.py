"""The errors the entry scripts turn into one clear line and a non-zero exit (never a traceback).

Kept apart from the modules that raise them so that `agent.py` and `play.py` can name them without importing
TensorFlow first.
"""
from checkpoint import CheckpointError
from config import ConfigError
from env import GameError
from vec_env import WorkerError

USER_ERRORS = (ConfigError, GameError, CheckpointError)   # bad input or an unusable file: exit 2
RUN_ERRORS = (WorkerError, FloatingPointError)             # the run failed (model.NonFiniteError is a FloatingPointError): exit 1
