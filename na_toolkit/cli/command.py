"""The CLI command protocol: a plugin registers `Command` objects through `na_register_commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    from ..errors import PluginError, describe

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
