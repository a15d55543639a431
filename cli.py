"""What the entry scripts share on the command line: help that states each default once and ends with usage
examples, and a start without TensorFlow's start-up lines unless `--verbose` asks for them.

Imports nothing heavy, so that `--help` and a mistyped option answer at once.
"""
import argparse
import contextlib
import os
import re
import sys
import tempfile

ROM_NOTE = """Sonic ROM: not shipped. Until it is imported, the scripts use the embedded default game
Airstriker-Genesis-v0. Import it once with `python -m stable_retro.import DIR`, where DIR holds
SONIC_W.68K (SEGA Mega Drive & Genesis Classics on Steam, uncompressed ROMs folder); its SHA-1 must
match stable-retro's rom.sha. See the README, section 'Sonic'."""

# Lines TensorFlow 2.21 writes to stderr while it is imported even with TF_CPP_MIN_LOG_LEVEL=3: absl logs
# before it is initialised (INFO lines about oneDNN, the CUDA stubs, CPU instructions), twice. Errors (E, F
# lines) and everything else are kept.
STARTUP_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "),     # absl INFO / WARNING lines (glog format)
    re.compile(r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler"),
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of the description and the epilog (the examples); appends '(default: X)' once
    to an option whose default means something: not to one whose help already states it, nor to a flag
    (store_true), nor for a default of None or ''."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "(default:" in text or not action.option_strings:
            return text
        flag = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        if flag or action.default in (None, "", argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def examples_epilog(docstring: str, note: str = "") -> str:
    """The indented lines that follow 'Examples:' in a script's docstring -> the help's closing 'examples:'
    section, then `note` (a paragraph) when given."""
    lines = docstring.split("Examples:", 1)[1].splitlines()[1:] if "Examples:" in docstring else []
    examples = []
    for line in lines:
        if line.strip() and not line[0].isspace():     # the next paragraph
            break
        if line.strip():
            examples.append(line.strip())
    text = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return f"{text}\n\n{note}" if note else text


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's own start-up and log lines (hidden otherwise)")


def is_startup_noise(line: str) -> bool:
    return any(pattern.match(line) for pattern in STARTUP_NOISE)


@contextlib.contextmanager
def stderr_without(is_noise):
    """Capture what is written to file descriptor 2 (C++ libraries write there, past sys.stderr) inside the
    block; afterwards write the lines for which is_noise(line) is False to sys.stderr, in order."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:          # no stderr at all: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_noise(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow (later imports of model.py, architecture.py find it loaded). Unless `verbose`, its C++
    logging is limited to fatal errors (TF_CPP_MIN_LOG_LEVEL=3, unless the environment sets a level) and the
    start-up lines it writes regardless (STARTUP_NOISE) are dropped; with `verbose` nothing is hidden."""
    if verbose:
        import tensorflow.compat.v1  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_without(is_startup_noise):
        import tensorflow.compat.v1  # noqa: F401


def typed_option_names(parser: argparse.ArgumentParser, argv) -> set:
    """The dests of the options the user actually typed in `argv` (their values override a resumed run's
    settings and --exact-2018's: config.resolve)."""
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            kwargs = {"dest": action.dest, "default": argparse.SUPPRESS}
            if isinstance(action, argparse.BooleanOptionalAction):
                kwargs["action"] = argparse.BooleanOptionalAction
            elif action.nargs == 0:
                kwargs["action"] = "store_const"
                kwargs["const"] = action.const
            probe.add_argument(*action.option_strings, **kwargs)
    known, _ = probe.parse_known_args(argv)
    return set(vars(known))


def library_versions() -> dict:
    """The versions a run's config.json records: Python and the libraries that decide what it computes."""
    from importlib import metadata
    versions = {"python": sys.version.split()[0]}
    for package in ("tensorflow", "stable-retro", "gymnasium", "numpy", "opencv-python-headless"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
