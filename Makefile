# `make demo` and `make test` do everything on a fresh machine: create .venv, install, run.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# ORT flavour: `make install ORT=gpu` installs onnxruntime-gpu instead of onnxruntime (never both).
ORT ?= cpu
STAMP := $(VENV)/.installed-$(ORT)
PYTEST_ARGS ?=

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(ORT),dev,datasets,ray]"
	$(BIN)/python -m pip install --quiet -e plugins/na_toolkit_nb201
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/na-toolkit demo

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff (lint + format check) over the whole tree, mypy over the packages pyproject.toml lists; the tools
# come with the dev extra that `install` installs
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info
