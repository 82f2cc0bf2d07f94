"""The CLI command protocol: a plugin registers `Command` objects through `na_register_commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NAToolkitError, PluginError, describe, raise_interrupt

if TYPE_CHECKING:
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class Command:
    """A subcommand: `configure(parser)` adds arguments, `run(args) -> exit code`."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def sets_up(
    what: str, plugin: str, setup: Callable[[argparse.ArgumentParser], None], toolkit: Toolkit, strict: bool
) -> bool:
    """Does `setup` (a plugin's `configure`, with what the CLI adds around it) build its parser? Tried on a
    parser of its own first: a plugin command or benchmark whose `configure` fails, or clashes with the flags
    every command has (-v, -q, --log-file), is then left out with a warning naming its plugin (a PluginError
    with --strict-plugins), and every other command still works."""
    try:
        setup(argparse.ArgumentParser(prog=f"na-toolkit {what}"))
        return True
    except Exception as exc:  # a plugin's code: any failure is that plugin's
        if strict and isinstance(exc, PluginError):  # a nested one (a benchmark of `bench`) stops as it is
            raise
        err = PluginError(plugin, f"{what} cannot set up its arguments ({describe(exc)})")
        if strict:
            raise err from exc
        if str(err) not in {str(e) for e in toolkit.errors}:  # said once, though the parser is built twice
            toolkit.errors.append(err)
            print(f"na-toolkit: warning: {err}; it is left out", file=sys.stderr)
        return False


#: the exit status of a plugin's command or benchmark that raised an error of its own (bad input is 2)
PLUGIN_CRASH_EXIT = 3
#: the exit status of a command whose input was fine but whose work failed its own check (`arch export
#: --check`: ONNX Runtime and torch differ); docs/cli.md, "Exit status"
WORK_FAILED_EXIT = 1


class PluginCommandCrash(PluginError):
    """A command or benchmark of a plugin (not a built-in) raised an error of its own, not a
    `NAToolkitError`: a bug of that plugin, said with its name and version; the error is its `__cause__`."""


@contextmanager
def plugin_crashes(toolkit: Toolkit, plugin: str, what: str) -> Iterator[None]:
    """Run `what` (e.g. "command 'x'") of `plugin` (its label, `name (dist version)`): an error of its own
    becomes a `PluginCommandCrash`. A built-in's passes as it is (a bug of the toolkit, with Python's
    traceback), and so does a toolkit error (already one line saying what to do) or a closed pipe."""
    info = next((p for p in toolkit.plugins.values() if p.label == plugin), None)
    try:
        yield
    except (NAToolkitError, BrokenPipeError):
        raise
    except Exception as exc:
        raise_interrupt(exc)  # a Ctrl-C the command's code turned into an error of its own
        if info is None or info.builtin:
            raise
        raise PluginCommandCrash(
            plugin, f"{what} failed: {describe(exc)}; a bug of the plugin, not of your input: report it to its authors"
        ) from exc
