# `make demo` and `make test` do everything on a fresh machine: create .venv, install, run.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# ORT flavour: `make install ORT=gpu` installs onnxruntime-gpu instead of onnxruntime (never both).
ORT ?= cpu
STAMP := $(VENV)/.installed-$(ORT)
PYTEST_ARGS ?=
# test processes (pytest-xdist): 2 suits the project's 2-core machines and CI; `make test TEST_WORKERS=0` runs
# in one process (a debugger, a -x hunt); `auto` uses every core. A test file stays on one process
# (--dist loadfile), so its module fixtures are built once.
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench clean bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# na_toolkit/__init__.py holds the version the install's metadata records: a new version reinstalls
$(STAMP): $(BIN)/python setup.cfg pyproject.toml na_toolkit/__init__.py
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(ORT),dev,datasets,ray]"
	$(BIN)/python -m pip install --quiet -e plugins/na_toolkit_nb201
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Compile the checkout's modules to bytecode. Where PYTHONDONTWRITEBYTECODE is set (it is on the project's
# machines), an editable install is otherwise compiled from source again by every process that imports it:
# each CLI subprocess and each search worker paid about a second for it. Up-to-date files are skipped.
bytecode: install
	$(BIN)/python -m compileall -q na_toolkit plugins

demo: bytecode
	$(BIN)/na-toolkit demo

test: bytecode
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# ruff (lint + format check) over the whole tree, mypy over the packages pyproject.toml lists; the tools
# come with the dev extra that `install` installs
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info
