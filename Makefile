# The README's two commands. Each builds the virtual environment .venv on first use (and installs again when a
# requirements file is newer than the stamp of its last install), then runs:
#   make train [ARGS="--num-envs 4 ..."]    python agent.py $(ARGS)
#   make test  [ARGS="-q tests/test_plot.py"] python -m pytest $(ARGS)
#   make play  [ARGS="--episodes 3"]          python play.py $(ARGS)   (on a fresh clone: the shipped agent)
# PYTHON is the interpreter that creates .venv (default python3; Python 3.10 to 3.13).

PYTHON ?= python3
VENV := .venv
ARGS ?=

.PHONY: train test play

train: $(VENV)/.installed-requirements
	$(VENV)/bin/python agent.py $(ARGS)

play: $(VENV)/.installed-requirements
	$(VENV)/bin/python play.py $(ARGS)

test: $(VENV)/.installed-requirements-dev
	$(VENV)/bin/python -m pytest $(ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

# a stamp per requirements file: written after its install succeeded, so a failed install is tried again
$(VENV)/.installed-requirements: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-requirements-dev: requirements-dev.txt requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed-requirements
