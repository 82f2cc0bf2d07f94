"""`na-toolkit`: the command line. Subcommands are plugins (`na_register_commands`).

Errors on bad input (`NAToolkitError`) print one line `na-toolkit: error: ...` and exit 2, no traceback.
A broken plugin is a warning unless `--strict-plugins`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import NAToolkitError

if TYPE_CHECKING:
    from ..toolkit import Toolkit


def build_parser(toolkit: Toolkit) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="na-toolkit",
        description="Hardware-aware neural architecture search (Neural Architect) built of plugins.",
    )
    parser.add_argument("--version", action="version", version=f"na-toolkit {__version__}")
    parser.add_argument(
        "--strict-plugins", action="store_true", help="fail (exit 2) when a plugin cannot be loaded, instead of warning"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in toolkit.commands.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        # every command receives the one toolkit main built, as `args.toolkit`; set before `configure`, so a
        # command whose arguments come from the plugins (`bench`) reads it: `p.get_default("toolkit")`
        p.set_defaults(_run=command.run, toolkit=toolkit)
        command.configure(p)
    return parser


def _load(strict: bool) -> Toolkit:
    from ..plugins import load_toolkit, set_toolkit

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        toolkit = load_toolkit(strict=strict)
    for w in caught:
        print(f"na-toolkit: warning: {w.message}", file=sys.stderr)
    # The CLI is an entry point: it builds the toolkit and hands it to each command as `args.toolkit`.
    # It is also installed as the process default for the library API (`na_toolkit.get_toolkit()`).
    set_toolkit(toolkit)
    return toolkit


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict-plugins" in argv
    try:
        toolkit = _load(strict)
        parser = build_parser(toolkit)
        args = parser.parse_args(argv)
        if getattr(args, "_run", None) is None:
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except NAToolkitError as exc:
        print(f"na-toolkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("na-toolkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
