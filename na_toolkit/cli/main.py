"""`na-toolkit`: the command line. Subcommands are plugins (`na_register_commands`).

Errors on bad input (`NAToolkitError`) print one line `na-toolkit: error: ...` and exit 2, no traceback.
A broken plugin is a warning unless `--strict-plugins`.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .. import __version__
from ..errors import NAToolkitError


def build_parser(toolkit) -> argparse.ArgumentParser:
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
        command.configure(p)
        p.set_defaults(_run=command.run)
    return parser


def _load(strict: bool):
    from ..plugins import load_toolkit, set_toolkit

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        toolkit = load_toolkit(strict=strict)
    for w in caught:
        print(f"na-toolkit: warning: {w.message}", file=sys.stderr)
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
