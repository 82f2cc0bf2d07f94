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

        code = main()
    except KeyboardInterrupt as exc:
        what, code = getattr(exc, "said_as", ("interrupted", 130))
        print(f"na-toolkit: {what}", file=sys.stderr)
        code = int(code)
    finally:  # also after argparse's exits (--help, a usage error)
        _exit_on_ctrl_c()
    if code in (130, 128 + signal.SIGTERM):
        _forget_unhandled_interrupt()
    return code


def _forget_unhandled_interrupt() -> None:
    """The Ctrl-C was handled (the line said, the run kept): exit with the status, not by the signal. CPython
    marks a KeyboardInterrupt that escapes code run through `PyRun_*` (a C extension running Python source
    while it initialises, e.g. through pybind11's `exec`) as unhandled, and a process so marked kills itself
    with SIGINT as it exits, whatever Python code did with the interrupt after (seen with strace: SIG_DFL, then
    kill(self, SIGINT), after `na-toolkit: interrupted`; benchmarks/ctrl_c_stress.py). The mark is cleared by
    the next `PyRun_*` call that ends without one: an empty one."""
    if sys.implementation.name != "cpython":
        return
    try:
        import ctypes

        ctypes.pythonapi.PyRun_SimpleString(b"")
    except (ImportError, AttributeError, OSError):  # no ctypes (a minimal build): the exit may be by the signal
        pass


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
