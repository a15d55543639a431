"""A newcomer's first ten minutes (issue 10): two commands that set everything up, a quiet start that moves at
once, help that states each default once and ends with examples, plain words where there is nothing yet."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "cpu_feature_guard",
         "To enable the following instructions")


# ----------------------------------------------------------------------------- make train, make test

def make(folder, *targets) -> str:
    result = subprocess.run(["make", "--no-print-directory", *targets], cwd=folder, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_builds_the_venv_once_and_installs_again_only_when_requirements_change(tmp_path):
    """The Makefile on a copy of the requirements, with a stand-in interpreter that only echoes its arguments."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    fake_python = tmp_path / "fake-python3"
    fake_python.write_text('#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin" && '
                           'cp "$0" "$3/bin/python"; fi\necho "ran python $*"\n')
    fake_python.chmod(0o755)
    first = make(tmp_path, "test", f"PYTHON={fake_python}", "ARGS=-q -x")
    assert f"ran python -m venv .venv" in first
    assert "ran python -m pip install --quiet -r requirements-dev.txt" in first
    assert first.rstrip().endswith("ran python -m pytest -q -x")
    second = make(tmp_path, "test", f"PYTHON={fake_python}")
    assert "pip install" not in second and "venv" not in second.replace(".venv/bin/python", "")
    train = make(tmp_path, "train", "ARGS=--num-envs 4")        # the dev install covered requirements.txt
    assert "pip install" not in train and train.rstrip().endswith("ran python agent.py --num-envs 4")
    later = time.time() + 5
    os.utime(tmp_path / "requirements.txt", (later, later))    # a changed requirements file: installed again
    again = make(tmp_path, "test")
    assert "ran python -m pip install --quiet -r requirements-dev.txt" in again and "-m venv" not in again


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(ROOT, ".ci", "run")) as fh:
        script = fh.read()
    assert "set -euo pipefail" in script and "pip install --quiet --upgrade pip" in script
    assert re.search(r"^make test\b", script, re.M), script
    with open(os.path.join(ROOT, "README.md")) as fh:
        readme = fh.read()
    fresh = readme.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert "make train" in fresh and "make test" in fresh and "pip install" not in fresh


# ----------------------------------------------------------------------------- --help

def script_parsers():
    import agent
    import evaluate
    import play
    import plot
    spec = importlib.util.spec_from_file_location("bench_throughput", os.path.join(ROOT, "bench", "throughput.py"))
    throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throughput)
    return {"agent.py": agent.build_parser, "play.py": play.build_parser, "evaluate.py": evaluate.build_parser,
            "plot.py": plot.build_parser, "bench/throughput.py": throughput.build_parser}


def option_entries(help_text: str) -> list:
    """The help of every option, each joined onto one line (argparse wraps long ones)."""
    body = help_text.split("options:", 1)[1].split("\n\n", 1)[0]
    entries = []
    for line in body.splitlines():
        if re.match(r"^  -", line):
            entries.append(line.strip())
        elif entries:
            entries[-1] += " " + line.strip()
    return entries


@pytest.mark.parametrize("script", ["agent.py", "play.py", "evaluate.py", "plot.py", "bench/throughput.py"])
def test_help_states_each_default_once_and_ends_with_examples(script, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    help_text = script_parsers()[script]().format_help()
    entries = option_entries(help_text)
    assert len(entries) >= 3
    for entry in entries:
        assert entry.count("(default:") <= 1, entry
        assert "(default: None)" not in entry and "(default: )" not in entry, entry
    examples = help_text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert 3 <= len(examples) <= 4, examples
    assert all(line.startswith(f"  python {script}") for line in examples), examples
    if script in ("agent.py", "play.py", "evaluate.py"):
        assert "python -m stable_retro.import DIR" in help_text       # the ROM notice points here


def test_help_shows_the_defaults_that_mean_something():
    entries = {entry.split()[0]: entry for entry in option_entries(script_parsers()["agent.py"]().format_help())}
    assert entries["--gamma"].endswith("discount factor (default: 0.99)")
    assert entries["--progress,"].endswith("(default: True)")                       # a boolean, once
    assert "(default: game and start time)" in entries["--run-name"]                # said in words, once
    assert "default" not in entries["--resume"] and "default" not in entries["--allow-config-change"]


# ----------------------------------------------------------------------------- TensorFlow's start-up lines

def test_stderr_filter_drops_the_startup_noise_and_keeps_the_rest(capfd):
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1795690648.911673    3430 port.cc:153] oneDNN custom operations are on. You may see ...",
             "I0000 00:00:1795690648.911987    3430 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
             "I0000 00:00:1795690636.448837    3313 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...",
             "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
             "appropriate compiler flags.",
             "E0000 00:00:1795690638.823329    3313 cuda_platform.cc:52] failed call to cuInit: a real error",
             "Traceback (most recent call last): a Python error"]
    with cli.stderr_without(cli.is_startup_noise):
        os.write(2, ("\n".join(lines) + "\n").encode())
    assert capfd.readouterr().err == lines[5] + "\n" + lines[6] + "\n"


def tiny_run(tmp_path, *extra) -> subprocess.CompletedProcess:
    """agent.py, one in-process env, one update of 8 steps; TF_CPP_MIN_LOG_LEVEL unset, as in a fresh shell."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("TF_CPP_MIN_LOG_LEVEL", "DISPLAY", "WAYLAND_DISPLAY"):
        environment.pop(name, None)
    return subprocess.run([sys.executable, os.path.join(ROOT, "agent.py"), "--vec-env", "dummy", "--num-envs", "1",
                           "--nsteps", "8", "--nminibatches", "1", "--noptepochs", "1", "--total-timesteps", "8",
                           "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "models"),
                           "--no-progress", "--tf-threads", "1", *extra],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_training_shows_only_the_projects_lines_unless_verbose(tmp_path):
    quiet = tiny_run(tmp_path, "--run-name", "quiet")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    output = quiet.stdout + quiet.stderr
    assert not [word for word in NOISE if word in output], output[-3000:]
    assert not re.search(r"^[IWEF]\d{4} ", output, re.M), output[-3000:]     # no absl / glog line at all
    assert quiet.stderr == "", quiet.stderr[-3000:]
    assert re.search(r"^\| nupdates\s+\| 1 ", quiet.stdout, re.M)

    verbose = tiny_run(tmp_path, "--run-name", "verbose", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert re.search(r"absl::InitializeLog|^[IWE]\d{4} ", verbose.stderr, re.M), verbose.stderr[-3000:]


# ----------------------------------------------------------------------------- the first update moves

def test_the_bar_counts_steps_while_they_are_collected(tmp_path, monkeypatch):
    """learn() advances the progress bar after every vector step of an update, not only when it ends, and
    says early how long an update and the run take."""
    import logger
    from robustness_helpers import learn_fake
    calls = []
    monkeypatch.setattr(logger.RunLogger, "advance",
                        lambda self, timesteps, fps=None, mean_return=None: calls.append((timesteps, fps)))
    out = learn_fake(tmp_path / "runs" / "r", updates=2, nenvs=2, nsteps=16)
    per_update = [(2, None)] * 16                                   # 2 envs: 2 agent steps per vector step
    fps = [c[1] for c in calls if c[1] is not None]                 # after each update: speed and return only
    assert len(fps) == 2 and all(f > 0 for f in fps)
    assert calls == per_update + [(0, fps[0])] + per_update + [(0, fps[1])]
    assert re.search(r"^estimate from the first \d+ steps: about .* to collect each update's 32 steps, so at least "
                     r".* for the whole run \(2 updates\)", out, re.M), out
    assert re.search(r"^about .* per update, about .* for the whole run \(2 updates\): an estimate from the first "
                     r"update$", out, re.M), out


# ----------------------------------------------------------------------------- plain words

def test_play_level_index_out_of_range_says_level_or_levels():
    import env
    import play
    with pytest.raises(env.GameError) as error:
        play.choose_level(env, env.DEFAULT_GAME, "3")                # the default game has one level
    assert str(error.value) == "--level 3: the level list has 1 level (index 0)"
    assert play.level_count(13) == "the level list has 13 levels (0 to 12)"


def test_rom_notice_is_one_short_sentence():
    import env
    notice = env.fallback_notice("auto", env.DEFAULT_GAME)
    assert notice.startswith("Sonic ROM not imported") and len(notice) <= 120 and notice.count(". ") == 0
    assert "--help" in notice


def test_readme_examples_that_need_the_rom_say_so():
    with open(os.path.join(ROOT, "README.md")) as fh:
        readme = fh.read()
    sonic_only = ("GreenHillZone", "StarLightZone", "--levels held-out", "--levels train", "--game sonic")
    lines = [line for line in readme.splitlines() if line.startswith("python ") and
             any(word in line for word in sonic_only)]
    assert lines
    for line in lines:
        assert "needs the Sonic ROM" in line, line
