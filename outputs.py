"""The files the scripts write for the user (a video, a score table, a plot): checked before any work starts,
then written under a temporary name in the same folder and renamed into place, so that a failed write (a full
disk, a killed process) leaves the earlier file as it was, or no file, never a part of one.

    check_output_file(path, option, extensions, error)    before the work: extension, folder, writable
    with replaced_on_success(path, option, error) as tmp:  after it: write to tmp; renamed to path at the end
"""
import contextlib
import os
import tempfile

from errors import ConfigError

TMP_MARK = ".tmp-"


def check_output_file(path: str, option: str, extensions: tuple, error=ConfigError) -> None:
    """Raise `error` when the file an option names cannot be written: another extension than `extensions`,
    a folder in its place, a folder that does not exist or that refuses a new file."""
    if os.path.splitext(path)[1].lower() not in extensions:
        raise error(f"{option} {path!r}: the file must end in {' or '.join(extensions)}")
    if os.path.isdir(path):
        raise error(f"{option} {path!r} is a folder: name a file inside it, such as "
                    f"{os.path.join(path, 'out' + extensions[0])}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"{option} {path!r}: the folder {folder} "
                    f"{'is a file, not a folder' if os.path.exists(folder) else 'does not exist'}")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=f".write-test{TMP_MARK}", dir=folder)
        os.close(descriptor)
        os.remove(probe)
    except OSError as failure:
        raise error(f"{option} {path!r}: cannot write to the folder {folder} ({failure.strerror or failure}): "
                    "choose another folder or fix its permissions") from None


def temporary_name(path: str) -> str:
    """A hidden name beside `path` with the same extension (writers choose the format by it):
    out/video.mp4 -> out/.video.tmp-<pid>.mp4"""
    folder, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    return os.path.join(folder, f".{stem}{TMP_MARK}{os.getpid()}{extension}")


@contextlib.contextmanager
def replaced_on_success(path: str, option: str, error=ConfigError,
                        advice: str = "free disk space or choose another path"):
    """Yield a temporary path beside `path` to write the whole file to. When the block succeeds, the file is
    flushed to disk and renamed to `path` in one step; when it fails, it is deleted and `path` stays as it
    was. A failed write (OSError, e.g. a full disk) becomes `error` with a one-line reason and `advice`."""
    tmp = temporary_name(path)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except OSError as failure:
        reason = failure.strerror or (str(failure).strip().splitlines() or [type(failure).__name__])[0]
        raise error(f"could not write {option} {path!r} ({reason}); it was left as it was: {advice}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
