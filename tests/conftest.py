"""Shared fixtures. `run_cli` runs `na-toolkit` in a real subprocess (the way a user runs it)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from na_toolkit.errors import PluginError
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.layers import LayerTypeRegistry
from na_toolkit.plugins import PluginWarning, load_toolkit
from na_toolkit.toolkit import Toolkit

REPO_ROOT = Path(__file__).resolve().parents[1]

#: the hardware models the toolkit ships (hwmodels/*.toml), by name
SHIPPED_HARDWARE_MODELS = frozenset(
    {
        "v100-sxm2",
        "a100-sxm4",
        "h100-sxm",
        "h200-sxm",
        "l4",
        "t4",
        "rtx-4090",
        "jetson-agx-orin",
        "jetson-orin-nano",
        "raspberry-pi-4",
        "x86-cpu",
    }
)


@functools.cache
def default_toolkit() -> Toolkit:
    """The toolkit the tests share (built-ins + installed entry points, strict), built once per session.
    Tests are an entry point: they build it here and pass it (or its registries) down explicitly."""
    return load_toolkit(strict=True)


def refused_then_warned(message: str, **load: Any) -> Toolkit:
    """`load_toolkit(**load)` raises a PluginError of exactly `message`; loaded non-strict it warns that one
    message and carries on. Returns the non-strict toolkit (what the CLI gets: the others keep working)."""
    with pytest.raises(PluginError) as info:
        load_toolkit(**load)
    assert str(info.value) == message
    with pytest.warns(PluginWarning) as caught:
        toolkit = load_toolkit(strict=False, **load)
    assert [str(w.message) for w in caught] == [message]
    return toolkit


#: the smallest real search: one torch evaluation of a simple-cnn child on digits, scored by a roofline
SMALL_SEARCH: dict[str, Any] = {
    "name": "small",
    "seed_network": "simple-cnn",
    "dataset": "digits",
    "evaluations": 1,
    "random_seed": 0,
    "search": {"per_round": 1, "moves": ["scale"]},
    "strategy": {"name": "random"},
    "evaluator": {"name": "torch", "options": {"epochs": 1, "threads": 1}},
    "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 5}}},
    "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
}


def config_doc(base: dict[str, Any], output: Path, **changes: Any) -> dict[str, Any]:
    """A copy of the search config `base` writing under `output`, with `changes` applied: a key path is
    written with `__` (`search__per_round=8` sets doc["search"]["per_round"])."""
    import copy

    doc = copy.deepcopy(base)
    doc["output"] = str(output)
    for key, value in changes.items():
        d = doc
        *path, last = key.split("__")
        for k in path:
            d = d[k]
        d[last] = value
    return doc


#: a small search on the NAS-Bench-201 table (the NB201 plugin), ground truth for free: what the tests that
#: run a strategy seed for seed start from (`config_doc(NB201_SEARCH, out, evaluations=9, ...)`)
NB201_SEARCH: dict[str, Any] = {
    "name": "nb201-small",
    "seed_network": "nb201",
    "dataset": "c10",
    "evaluations": 12,
    "random_seed": 4,
    "search": {"per_round": 4, "moves": ["set_edge_op"]},
    "executor": {"name": "local", "options": {"workers": 1}},
    "evaluator": "nb201-table",
    "devices": {"pixel3": {"device": "lat_pixel3", "time_model": "nb201-table", "budgets": {"latency_ms": 10.0}}},
}


def evaluated_in_order(doc: dict[str, Any], toolkit: Toolkit) -> list[tuple[str, str, float]]:
    """Run the search `doc` (no outputs) and return what it evaluated, in order: (hash, origin, reward)."""
    from na_toolkit.search import run_search

    result = run_search(doc, toolkit=toolkit, progress=False, outputs=False)
    return [(e.hash, e.candidate.origin, e.score.reward) for e in result.evaluated]


def get_seed(name: str) -> Architecture:
    """A seed network built with the shared test toolkit's layer types."""
    return default_toolkit().seed(name)


def layer_types() -> LayerTypeRegistry:
    return default_toolkit().layer_types


@pytest.fixture
def toolkit() -> Toolkit:
    """A fresh toolkit (built-ins only, no entry points) for a test that registers or inspects plugins."""
    return load_toolkit(entry_points=False)


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """Assert the CLI rejected its input the way it must (exit 2, one `na-toolkit: error:` line on stderr,
        no traceback) and return that line."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert self.returncode == 2, f"exit {self.returncode}, stderr:\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr
        errors = [line for line in lines if line.startswith("na-toolkit: error:")]
        other = [line for line in lines if line not in errors and not line.startswith("na-toolkit: warning:")]
        assert len(errors) == 1 and not other, self.stderr
        return errors[0]


def run_na_toolkit(
    *args: Any,
    env: dict[str, str | None] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 300,
    python_flags: tuple[str, ...] = (),
) -> CliResult:
    """Run `python -m na_toolkit ARGS` (what the `na-toolkit` script runs) with this interpreter. `env` entries
    override the current environment (None removes a variable); `cwd` defaults to the repository root."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    cmd = [sys.executable, *python_flags, "-m", "na_toolkit", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd or REPO_ROOT, timeout=timeout)
    return CliResult(cmd, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def run_cli():
    """`run_cli("arch", "seeds", "--json").json()`; see `run_na_toolkit` for the options."""
    return run_na_toolkit


def interruptible() -> None:
    """`preexec_fn` for a child the test will Ctrl-C: SIGINT as a terminal's foreground job gets it. A child
    inherits an ignored SIGINT (POSIX) and Python then installs no KeyboardInterrupt handler, so a test
    session started with SIGINT ignored (a background job of a non-interactive shell) would make the child
    deaf to it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
