"""`python -m na_toolkit ...`, and the `na-toolkit` command: both start at `run`."""

from __future__ import annotations

import os
import signal
import sys


def run() -> int:
    """`na-toolkit`'s entry point: `main` of cli/main.py, imported here. From the moment this runs, a Ctrl-C
    ends as it does during a command, with one line `na-toolkit: interrupted` and exit 130, never a traceback:
    while the CLI's modules import (argparse, logging, the toolkit's), while the plugins load, in the instants
    `main` installs and restores its signal handlers, and as the process exits after the command (`_exit`).
    Before it, the interpreter starts and imports the `na_toolkit` package, which imports nothing; this module
    imports nothing either."""
    try:
        from .cli.main import main

        return main()
    except KeyboardInterrupt as exc:
        what, code = getattr(exc, "said_as", ("interrupted", 130))
        print(f"na-toolkit: {what}", file=sys.stderr)
        return int(code)
    finally:  # also after argparse's exits (--help, a usage error)
        _exit_on_ctrl_c()


def _exit_on_ctrl_c() -> None:
    """The command is done; what is left is Python's exit (joining threads, the atexit functions of torch,
    multiprocessing, logging), which a Ctrl-C would interrupt with a traceback. One now ends the process at
    once: its output is flushed first. A Ctrl-C ignored (the CLI was stopping, or it started ignored) stays so."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: left to Python's exit, as before
            pass
    signal.signal(signal.SIGINT, _exit_now)


def _exit_now(signum: int, frame: object) -> None:
    os.write(2, b"na-toolkit: interrupted\n")
    os._exit(130)


if __name__ == "__main__":
    sys.exit(run())
