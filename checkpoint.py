"""Run folders and checkpoints that survive a kill at any instant.

    runs/<name>/config.json                   every setting, levels, library versions, command line
    runs/<name>/progress.csv, events.*        the training table (see logger.py)
    runs/<name>/checkpoints/000120/           one checkpoint: model.ckpt.* (weights and the optimizer's slots)
                                              and state.json (counters, random states, episode window)
    runs/<name>/checkpoints/latest, best      one line each: the folder name of that checkpoint
    runs/<name>/.lock                         held (flock) by the process training the run; holds its pid
    models/latest                             one line: the newest checkpoint of any run (play.py's default)

A checkpoint is written into a temporary folder beside its final place, flushed, then renamed: the rename is
atomic, so a kill leaves either the old set of checkpoints or the new one, never a half-written one where
`--resume` reads. Pointers are replaced the same way. Leftover temporary folders are removed on the next start.
"""
import csv
import errno
import fcntl
import glob
import json
import os
import shutil
import time

from errors import CheckpointError, ConfigError  # noqa: F401  (raised here; checkpoint.CheckpointError as before)
from outputs import TMP_MARK

CHECKPOINT_FILE = "model.ckpt"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
# the agent that ships with the project (weights only; models/README.md says how it was made), and its game
SHIPPED_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "airstriker")
SHIPPED_GAME = "Airstriker-Genesis-v0"


class NoCheckpointError(CheckpointError):
    """'latest' names nothing: no models/latest and no 2018 checkpoint in the models folder."""


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, text: str) -> None:
    """Replace the file at `path` with `text` so that a reader sees the old or the new content, never a part."""
    tmp = f"{path}{TMP_MARK}{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):           # a full disk: leave no partial temporary file behind
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def failure_reason(error: Exception) -> str:
    """One line that says why a write failed: the OS's words for the usual causes (TensorFlow puts them inside
    a many-line message), else the first line of the error's message."""
    text = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO):
        if os.strerror(code) in text:
            return os.strerror(code)
    return (text.strip().splitlines() or [type(error).__name__])[0]


def read_pointer(path: str):
    """The one-line content of a pointer file, or None when there is none."""
    try:
        with open(path) as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def ensure_writable(folder: str, what: str) -> None:
    """Create `folder` and prove a file can be written there, or raise CheckpointError saying what to do."""
    probe = os.path.join(folder, f".write-test{TMP_MARK}{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as error:
        if os.path.exists(probe):   # created, then the write failed (a full disk): leave nothing behind
            os.remove(probe)
        raise CheckpointError(f"cannot write to the {what} folder {folder!r} ({error.strerror or error}): "
                              f"choose another with --{what.replace(' ', '-')}-dir or fix its permissions") from None


def remove_tree(path: str) -> None:
    """Delete a folder so that a kill at any instant leaves it whole or gone from its name: it is renamed to a
    temporary name first (which remove_leftovers deletes on the next start), then deleted."""
    doomed = f"{path}{TMP_MARK}old-{os.getpid()}"
    shutil.rmtree(doomed, ignore_errors=True)
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def default_run_dir(runs_dir: str, game: str) -> str:
    """runs/<game>-<start time>, e.g. runs/Airstriker-20261124-031500."""
    return os.path.join(runs_dir, f"{game.split('-')[0]}-{time.strftime('%Y%m%d-%H%M%S')}")


def is_checkpoint(path: str) -> bool:
    """A folder holding a complete checkpoint of this project (weights index and state)."""
    return os.path.isfile(os.path.join(path, STATE_FILE)) and os.path.isfile(
        os.path.join(path, CHECKPOINT_FILE + ".index"))


class RunFolder:
    """One training run's folder: its config, logs and checkpoints."""

    def __init__(self, path: str, models_dir: str = "models"):
        self.path = path
        self.models_dir = models_dir
        self.checkpoints_dir = os.path.join(path, "checkpoints")
        self._lock_fd = None   # the open .lock file while this process holds the run

    # -- one trainer at a time
    def lock(self) -> None:
        """Hold the run for this process until unlock(). A second process training the same folder (a resume
        started while the run still trains) would trim its table, prune its checkpoints and write over them.
        The lock is the OS's (flock on .lock), so it ends with the process, however the process ends; the file
        stays. Raises CheckpointError, having touched nothing else, when another process holds it."""
        ensure_writable(self.path, "runs")
        fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CheckpointError(f"the run {self.path!r} is being trained by another process (pid {holder}): wait "
                                  f"for it to end, or stop it (kill -INT {holder}) and resume then") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the file releases the flock
            self._lock_fd = None

    # -- creation
    def create(self, config: dict) -> None:
        """Make the folders (checking they are writable) and write config.json."""
        ensure_writable(self.path, "runs")
        ensure_writable(self.checkpoints_dir, "runs")
        ensure_writable(self.models_dir, "models")
        self.remove_leftovers()
        write_atomic(os.path.join(self.path, "config.json"), json.dumps(config, indent=2, sort_keys=True))

    def read_config(self) -> dict:
        try:
            with open(os.path.join(self.path, "config.json")) as fh:
                config = json.load(fh)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"the run folder {self.path!r} has no readable config.json ({error})") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"the run folder {self.path!r} has no readable config.json (not a JSON object)")
        return config

    def remove_if_unused(self) -> bool:
        """Delete the run folder when it holds only what a run puts there before its first checkpoint
        (config.json, the table and TensorBoard event files, videos, an empty checkpoints folder); True when it
        is gone."""
        try:
            names = os.listdir(self.path)
            checkpoints = os.listdir(self.checkpoints_dir) if os.path.isdir(self.checkpoints_dir) else []
        except FileNotFoundError:
            return True
        unused = all(n in ("config.json", "checkpoints", "progress.csv", "videos", LOCK_FILE)
                     or n.startswith("events.out.tfevents.") for n in names)
        if not unused or checkpoints:
            return False
        remove_tree(self.path)
        return True

    def remove_leftovers(self) -> None:
        """Delete temporary folders and files left by a save that was killed."""
        for leftover in glob.glob(os.path.join(glob.escape(self.checkpoints_dir), f"*{TMP_MARK}*")):
            shutil.rmtree(leftover, ignore_errors=True) if os.path.isdir(leftover) else os.remove(leftover)

    # -- saving
    def save(self, update: int, save_weights, state: dict, keep: int, score=None,
             score_kind: str = "ep_return_mean") -> str:
        """Write checkpoint `update` atomically, move the pointers, prune old ones; returns its folder.

        save_weights(prefix) writes the TF files; state is JSON-able. `score` decides the best checkpoint
        (None: no candidate); `score_kind` says what it measures ('ep_return_mean', the training episodes' mean
        return, or 'eval_return_mean', an evaluation's): a score of another kind than the best's replaces it. On any failure the temporary folder is removed and CheckpointError raised:
        the previous checkpoints and pointers are untouched.
        """
        name = f"{update:06d}"
        final = os.path.join(self.checkpoints_dir, name)
        tmp = f"{final}{TMP_MARK}{os.getpid()}"
        renamed = False
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            save_weights(os.path.join(tmp, CHECKPOINT_FILE))
            state = dict(state, score=score, score_kind=score_kind)
            with open(os.path.join(tmp, STATE_FILE), "w") as fh:
                json.dump(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            for file in os.listdir(tmp):
                with open(os.path.join(tmp, file), "rb") as fh:
                    os.fsync(fh.fileno())
            if os.path.isdir(final):       # left by a run killed before its pointers named it (see discard_after)
                remove_tree(final)
            os.rename(tmp, final)
            renamed = True
            _fsync_dir(self.checkpoints_dir)
            write_atomic(os.path.join(self.checkpoints_dir, "latest"), name)
            if score is not None and self._is_best(score, score_kind):
                write_atomic(os.path.join(self.checkpoints_dir, "best"), name)
            os.makedirs(self.models_dir, exist_ok=True)
            write_atomic(os.path.join(self.models_dir, "latest"), os.path.abspath(final))
        except Exception as error:
            shutil.rmtree(tmp, ignore_errors=True)
            if renamed and read_pointer(os.path.join(self.checkpoints_dir, "latest")) != name:
                remove_tree(final)         # complete but named by no pointer: back to the previous set exactly
            previous = self.latest()
            after = (f"The previous checkpoint is intact ({previous}); free disk space or choose another --runs-dir, "
                     "then --resume" if previous else "No checkpoint of this run was written before; free disk "
                     "space or choose another --runs-dir, then start the run again")
            raise CheckpointError(f"could not write checkpoint {final!r}: {failure_reason(error)}. {after}") from None
        self.prune(keep)
        return final

    def _is_best(self, score: float, score_kind: str) -> bool:
        best = read_pointer(os.path.join(self.checkpoints_dir, "best"))
        if best is None or not is_checkpoint(os.path.join(self.checkpoints_dir, best)):
            return True
        best_state = load_state(os.path.join(self.checkpoints_dir, best))
        best_score = best_state.get("score")
        if best_state.get("score_kind", "ep_return_mean") != score_kind:   # evaluations turned on by a resume
            return True
        return best_score is None or score > best_score

    def checkpoints(self) -> list:
        """Complete checkpoint folder names, oldest first."""
        if not os.path.isdir(self.checkpoints_dir):
            return []
        names = [n for n in os.listdir(self.checkpoints_dir) if n.isdigit()]
        return sorted(n for n in names if is_checkpoint(os.path.join(self.checkpoints_dir, n)))

    def prune(self, keep: int) -> None:
        """Delete all but the `keep` newest checkpoints and the best one."""
        protected = {read_pointer(os.path.join(self.checkpoints_dir, p)) for p in ("latest", "best")}
        for name in self.checkpoints()[:-keep]:
            if name not in protected:
                remove_tree(os.path.join(self.checkpoints_dir, name))

    def discard_after(self, update: int) -> None:
        """Delete the checkpoints newer than `update` (the one a run resumes from): they belong to a future
        that the resumed run replays, and a later save of the same update must never delete a folder that a
        pointer names. Pointers move first, so at every instant they name complete checkpoints."""
        newer = [n for n in os.listdir(self.checkpoints_dir) if n.isdigit() and int(n) > update]
        if not newer:
            return
        kept = [n for n in self.checkpoints() if int(n) <= update]
        name = f"{update:06d}"
        if read_pointer(os.path.join(self.checkpoints_dir, "latest")) in newer and name in kept:
            write_atomic(os.path.join(self.checkpoints_dir, "latest"), name)
        if read_pointer(os.path.join(self.checkpoints_dir, "best")) in newer:
            scored = [(load_state(os.path.join(self.checkpoints_dir, n)).get("score"), n) for n in kept]
            scored = [(s, n) for s, n in scored if s is not None]
            if scored:   # the best earlier one (the first of equals, as _is_best picks)
                write_atomic(os.path.join(self.checkpoints_dir, "best"), max(scored, key=lambda sn: (sn[0], -int(sn[1])))[1])
            else:
                os.remove(os.path.join(self.checkpoints_dir, "best"))
        models_latest = read_pointer(os.path.join(self.models_dir, "latest"))
        if models_latest and os.path.dirname(models_latest) == os.path.abspath(self.checkpoints_dir) \
                and os.path.basename(models_latest) in newer and name in kept:
            write_atomic(os.path.join(self.models_dir, "latest"), os.path.join(os.path.abspath(self.checkpoints_dir), name))
        for stale in newer:
            remove_tree(os.path.join(self.checkpoints_dir, stale))

    def latest(self):
        name = read_pointer(os.path.join(self.checkpoints_dir, "latest"))
        return os.path.join(self.checkpoints_dir, name) if name else None


def read_table(csv_path: str) -> tuple:
    """A run's progress.csv (or any CSV table) -> (header [names], rows as dicts of strings). Raises OSError,
    UnicodeDecodeError or csv.Error for a file that cannot be read as a table: each reader says what that means."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames or [], list(reader)


def as_number(cell) -> float:
    """A table cell as a float: NaN for an empty or non-numeric cell (a row logged before the first episode)."""
    try:
        return float(cell)
    except (TypeError, ValueError):
        return float("nan")


def load_state(checkpoint_dir: str) -> dict:
    """The state.json of a checkpoint folder, or CheckpointError."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    try:
        with open(path) as fh:
            state = json.load(fh)
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        return state
    except FileNotFoundError:
        raise CheckpointError(f"{checkpoint_dir!r} is not a checkpoint folder written by agent.py (no {STATE_FILE}): "
                              "resume from a run folder or runs/NAME/checkpoints/N, or start a new run from these "
                              "weights with --init-weights") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"the checkpoint {checkpoint_dir!r} is corrupt ({STATE_FILE}: {error}); "
                              "resume from an earlier one in the same folder") from None


def resolve_checkpoint(spec: str, models_dir: str = "models", option: str = "--checkpoint") -> str:
    """A checkpoint as the user names it (with `option`) -> a TF checkpoint prefix (…/model.ckpt).

    `latest` (models/latest, else the highest models/<N>/model.ckpt as the 2018 scripts saved them),
    a run folder (its latest checkpoint), a checkpoint folder, or a TF prefix such as models/260/model.ckpt.
    The one resolution of play.py --checkpoint, agent.py --resume and --init-weights, evaluate.py --checkpoint.
    """
    path = spec
    if spec == "latest":
        path = read_pointer(os.path.join(models_dir, "latest"))
        if path is None:
            legacy = sorted((d for d in glob.glob(os.path.join(glob.escape(models_dir), "*", CHECKPOINT_FILE + ".index"))
                             if os.path.abspath(os.path.dirname(d)) != SHIPPED_AGENT),
                            key=lambda p: int(os.path.basename(os.path.dirname(p)))
                            if os.path.basename(os.path.dirname(p)).isdigit() else -1)
            if not legacy:
                raise NoCheckpointError(f"no checkpoint found: {models_dir}/latest does not exist. Train first "
                                      f"(python agent.py) or name a checkpoint with {option} PATH")
            return legacy[-1][: -len(".index")]
    if os.path.isdir(os.path.join(path, "checkpoints")):
        latest = RunFolder(path).latest()
        if latest is None:
            raise CheckpointError(f"the run folder {path!r} holds no checkpoint yet")
        path = latest
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_FILE)
    if not os.path.isfile(path + ".index"):
        raise CheckpointError(f"checkpoint {spec!r} not found (looked for {path}.index): give a run folder, "
                              "a checkpoint folder, a TF checkpoint prefix such as models/260/model.ckpt, or 'latest'")
    return path


def checked_resume(spec: str, models_dir: str) -> tuple:
    """agent.py --resume SPEC -> (checkpoint folder, its run folder, the run's saved settings); CheckpointError,
    one line, for a checkpoint that is missing or holds no run settings."""
    checkpoint_dir = os.path.dirname(resolve_checkpoint(spec, models_dir, option="--resume"))
    saved = load_state(checkpoint_dir).get("config")
    if not saved:
        raise CheckpointError(f"{checkpoint_dir!r} holds no run config: start a new run from its weights with "
                              "--init-weights")
    return checkpoint_dir, os.path.dirname(os.path.dirname(os.path.abspath(checkpoint_dir))), saved


def run_dir_for(config, game: str, init_weights=None, resumed_run_dir=None) -> str:
    """The run folder a run writes (a resumed run's own; a new one: --runs-dir/--run-name, or the game and the
    time), after checking, before anything starts, that the runs and models folders can be written, that
    --init-weights names a checkpoint and that a new run's folder holds no checkpoints (ConfigError otherwise)."""
    ensure_writable(config.runs_dir, "runs")
    ensure_writable(config.models_dir, "models")
    if init_weights:
        resolve_checkpoint(init_weights, config.models_dir, option="--init-weights")
    if resumed_run_dir:
        return resumed_run_dir
    run_dir = (os.path.join(config.runs_dir, config.run_name) if config.run_name
               else default_run_dir(config.runs_dir, game))
    checkpoints = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        raise ConfigError(f"the run folder {run_dir!r} already holds checkpoints: choose another --run-name, "
                          f"or continue it with --resume {run_dir}")
    return run_dir


def resolve_watched(spec: str, models_dir: str, game: str) -> tuple:
    """play.py's and evaluate.py's --checkpoint -> (TF checkpoint prefix, a notice line or None). As
    resolve_checkpoint, but where 'latest' names nothing trained yet, the shipped agent plays its own game (a
    fresh clone can watch an agent at once); on another game one line says what to do."""
    try:
        return resolve_checkpoint(spec, models_dir), None
    except NoCheckpointError:
        shipped = os.path.join(SHIPPED_AGENT, CHECKPOINT_FILE)
        if game == SHIPPED_GAME and os.path.isfile(shipped + ".index"):
            return shipped, (f"no trained agent yet ({models_dir}/latest does not exist): playing the agent shipped "
                             f"in models/airstriker (models/README.md)")
        if os.path.isfile(shipped + ".index"):
            raise NoCheckpointError(f"no trained agent for {game} ({models_dir}/latest does not exist): train one "
                                    f"with python agent.py, or watch the agent shipped for the embedded game with "
                                    f"--game {SHIPPED_GAME}") from None
        raise
