"""`python -m na_toolkit ...`, and the `na-toolkit` command: both start at `run`."""

from __future__ import annotations

import sys


def run() -> int:
    """`na-toolkit`'s entry point: `main` of cli/main.py, imported here. From the moment this runs, a Ctrl-C
    ends as it does during a command, with one line `na-toolkit: interrupted` and exit 130, never a traceback:
    while the CLI's modules import (argparse, logging, the toolkit's), while the plugins load, and in the
    instants `main` installs and restores its signal handlers. Before it, the interpreter starts and imports
    the `na_toolkit` package, which imports nothing; this module imports nothing either."""
    try:
        from .cli.main import main

        return main()
    except KeyboardInterrupt as exc:
        what, code = getattr(exc, "said_as", ("interrupted", 130))
        print(f"na-toolkit: {what}", file=sys.stderr)
        return int(code)


if __name__ == "__main__":
    sys.exit(run())
