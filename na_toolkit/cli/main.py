"""`na-toolkit`: the command line. Subcommands are plugins (`na_register_commands`).

Errors on bad input (`NAToolkitError`) print one line `na-toolkit: error: ...` and exit 2, no traceback.
A broken plugin is a warning unless `--strict-plugins`. A plugin's command that raises an error of its own
(not a `NAToolkitError`: a bug of that plugin) is one line naming the plugin and its version, exit 3
(`PLUGIN_CRASH_EXIT`); `-vv` prints its traceback and `--log-file` keeps it. A built-in command's is left as
Python prints it, a bug of the toolkit's. Logging goes through Python's `logging` (loggers
under `na_toolkit`): warnings on stderr by default, `--verbose` adds INFO (e.g. one line per search round),
`-vv` DEBUG, `--quiet` only errors, `--log-file PATH` appends INFO and above to a file whatever the console
shows (and the error line a failing command prints). The flags go before or after the command.

Ctrl-C prints `na-toolkit: interrupted` and exits 130. SIGTERM takes the same path (a search marks its run
interrupted and says how to resume it, its workers are ended): `na-toolkit: terminated`, exit 143 (128 + 15).
Once stopping, a second Ctrl-C only says so (the clean-up and exit 130 go on), and a SIGTERM ends the process
at once. The handlers are the CLI's, installed while `main` runs and restored after: the library installs
none in a host application.
"""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import NAToolkitError, PluginError, Terminated
from .command import PLUGIN_CRASH_EXIT, PluginCommandCrash, plugin_crashes, sets_up

if TYPE_CHECKING:
    from ..toolkit import Toolkit
    from .command import Command


def _logging_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """The logging flags; `default` is argparse.SUPPRESS on the subcommands, so a flag given before the
    command is not reset by the subcommand's parser."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="show INFO logs (-vv: DEBUG) on stderr"
    )
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="show only errors on stderr")
    parser.add_argument("--log-file", metavar="PATH", default=default, help="append INFO and above logs to PATH")


def build_parser(toolkit: Toolkit, strict: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="na-toolkit",
        description="Hardware-aware neural architecture search (Neural Architect) built of plugins.",
    )
    _logging_flags(parser, None)
    parser.add_argument("--version", action="version", version=f"na-toolkit {__version__}")
    parser.add_argument(
        "--strict-plugins", action="store_true", help="fail (exit 2) when a plugin cannot be loaded, instead of warning"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in toolkit.commands.items():
        setup = functools.partial(_configure, command=command, toolkit=toolkit, strict=strict)
        if sets_up(f"command {name!r}", toolkit.commands.plugin_of(name), setup, toolkit, strict):
            setup(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def _configure(p: argparse.ArgumentParser, *, command: Command, toolkit: Toolkit, strict: bool) -> None:
    if not callable(command.run) or not callable(command.configure):
        raise TypeError(f"its configure and run must be functions, got {command.configure!r}, {command.run!r}")
    # every command receives the one toolkit main built, as `args.toolkit`; set before `configure`, so a
    # command whose arguments come from the plugins (`bench`) reads it: `p.get_default("toolkit")`
    p.set_defaults(
        _run=command.run,
        _plugin=toolkit.commands.plugin_of(command.name),
        _strict_plugins=strict,
        toolkit=toolkit,
    )
    _logging_flags(p, argparse.SUPPRESS)
    command.configure(p)
    _describe_nested(p)
    for nested in _nested_parsers(p):  # `hw calibrate -v`, `bench ir -q`: the flags go after any command
        if "-v" not in nested._option_string_actions and "--log-file" not in nested._option_string_actions:
            _logging_flags(nested, argparse.SUPPRESS)


def _describe_nested(parser: argparse.ArgumentParser) -> None:
    """A subcommand added with a help line only (`arch seeds`) shows it as its own `--help`'s description
    too, at every depth, rather than a usage line alone."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                if not sub.description and choice.help:
                    sub.description = choice.help
                _describe_nested(sub)


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` was parsed for: `na-toolkit hw calibrate` -> calibrate's."""
    while True:
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, action.dest, None) if action is not None else None
        if action is None or not isinstance(chosen, str) or chosen not in action.choices:
            return parser
        parser = action.choices[chosen]


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> None:
    """Exit 2 with `na-toolkit CMD: error: unrecognized arguments: ...`, the command's usage, and the
    command's options close to a misspelt one (argparse says it with the top level's usage and no hint)."""
    import difflib

    options = [o for o in parser._option_string_actions if o.startswith("--")]
    close = [difflib.get_close_matches(e.split("=", 1)[0], options, n=1, cutoff=0.7) for e in extras if e[:2] == "--"]
    hints = "".join(f" Did you mean {c[0]!r}?" for c in close if c)
    parser.error(
        f"unrecognized arguments: {' '.join(extras)}.{hints}"
        if hints
        else f"unrecognized arguments: {' '.join(extras)}"
    )


def _refuse_empty_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 under the command's usage when an argument is given as "" (or blanks): no name, path or number
    is empty, and read as the option left out it did what the user did not ask (`evaluate --dataset ""` trained
    on digits, `hw calibrate --out ""` printed the model instead of writing it, `runs ""` listed ./runs)."""
    parsers = [parser]
    while (inner := _innermost(parsers[-1], args)) is not parsers[-1]:
        parsers.append(inner)
    for action in (a for p in parsers for a in p._actions):
        value = getattr(args, action.dest, None)
        given = value if isinstance(value, list) else [value]
        if value != action.default and any(isinstance(v, str) and not v.strip() for v in given):
            name = max(action.option_strings, key=len) if action.option_strings else action.metavar or action.dest
            parsers[-1].error(f"argument {name}: an empty value ({value!r}); give one, or leave it out")


def _nested_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The subcommands' parsers below `parser` (`hw` -> `list`, `show`, `calibrate`), at every depth."""
    out: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias maps to its parser again
                out += [sub, *_nested_parsers(sub)]
    return out


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


#: suffixes of the documents the toolkit reads and writes (configs, profiles, models, a run's files): log
#: lines appended to an existing one would break it (`--log-file search.toml` made the config unreadable)
DOCUMENT_SUFFIXES = (".json", ".jsonl", ".toml", ".onnx", ".pt", ".pth", ".npz", ".csv", ".sqlite")


def _check_log_file(log_file: str) -> None:
    """A ConfigError when `log_file` is an existing, non-empty document (by its suffix) rather than a log: the
    file handler appends to it, and nothing already stored is to be lost to log lines."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..files import document_kind

    p = Path(log_file)
    if not (p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES and p.stat().st_size > 0):
        return
    kind = document_kind(p)
    what = f"an existing {kind}" if kind else f"an existing {p.suffix} file, not a log"
    raise ConfigError(
        f"--log-file {log_file}: it is {what}, which the log lines appended to it would break; give a log file "
        "(e.g. na-toolkit.log) or another path"
    )


def configure_logging(verbose: int, quiet: bool, log_file: str | None) -> None:
    """Handlers on the `na_toolkit` logger (not the root: a host application's logging stays its own)."""
    from ..errors import ConfigError

    if verbose and quiet:
        raise ConfigError("--verbose and --quiet contradict each other; give one")
    logger = logging.getLogger("na_toolkit")
    for h in list(logger.handlers):  # main() may run more than once in a process (tests, the fuzz bench)
        if getattr(h, "_na_toolkit_cli", False):
            logger.removeHandler(h)
            h.close()
    console_level = (
        logging.ERROR if quiet else logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    )
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("na-toolkit: %(message)s"))
    handlers: list[logging.Handler] = [console]
    if log_file:
        _check_log_file(log_file)
        try:
            file_handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: cannot write there ({exc.strerror})") from None
        file_handler.setLevel(logging.INFO)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file_handler)
    for h in handlers:
        h._na_toolkit_cli = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(min(h.level for h in handlers))
    logger.propagate = False


#: the longest error message printed: a message quoting a bad value of 100,000 characters is cut
MAX_MESSAGE_CHARS = 2_000


def _one_line(message: str) -> str:
    """The message on one line (a library's multi-line text, a name with a newline), of a readable length."""
    text = " ".join(line.strip() for line in message.splitlines())
    if len(text) > MAX_MESSAGE_CHARS:
        text = (
            f"{text[: MAX_MESSAGE_CHARS // 2]} [... {len(text) - MAX_MESSAGE_CHARS:,} characters ...] "
            + text[-MAX_MESSAGE_CHARS // 2 :]
        )
    return text


def _exit_code(code: object, args: argparse.Namespace) -> int:
    """A command's return value as the process's exit status (None: 0); anything but an int is its plugin's
    mistake, said as such rather than a traceback from int()."""
    if code is None:
        return 0
    if not isinstance(code, int):
        raise PluginError(
            args._plugin, f"command {args.command!r} returned {code!r}; a command's run(args) returns an exit status"
        )
    return int(code)


def _run_command(args: argparse.Namespace) -> object:
    """The command's `run(args)`; a plugin's command's own error becomes a `PluginCommandCrash` naming it."""
    with plugin_crashes(args.toolkit, args._plugin, f"command {args.command!r}"):
        return args._run(args)


def _interrupt(signum: int, frame: object) -> None:
    _stopping()
    raise KeyboardInterrupt


def _terminate(signum: int, frame: object) -> None:
    _stopping()
    raise Terminated


def _stopping() -> None:
    """The first Ctrl-C or SIGTERM: the command now stops cleanly (a search marks its run interrupted, ends
    its workers, says how to resume). From here a Ctrl-C only says that it is stopping: raised in the middle
    of that clean-up, or as the process exits, it would cut it short or end the process by the signal
    instead of exit 130. A SIGTERM ends the process at once (nothing stored is lost, as with a kill)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, _already_stopping)


def _already_stopping(signum: int, frame: object) -> None:
    global _told_stopping
    if not _told_stopping:  # os.write: a print here could re-enter a print the clean-up is in
        _told_stopping = True
        os.write(2, f"na-toolkit: stopping, one moment (kill -9 {os.getpid()} ends it now)\n".encode())


_told_stopping = False


@contextmanager
def _stop_signals(command_line: bool) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the command cleanly while the CLI runs (`_stopping`); the previous handlers are
    restored after (a test or a host calling `main()` keeps its own), except in the process of the command
    line itself (`command_line`: main() without argv) once it is stopping, which ignores Ctrl-C as it exits. A
    Ctrl-C ignored when the process started (a background job) stays ignored. Only the main thread can set a
    handler: elsewhere nothing changes."""
    global _told_stopping
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        yield
        return
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    _told_stopping = False
    try:
        yield
    finally:
        stopping = signal.getsignal(signal.SIGINT) is _already_stopping
        # a handler set outside Python reads as None: the default is the nearest to put back
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if command_line and stopping:  # ignored, not handled: Python puts back SIG_DFL for handlers as it exits
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, previous_int if previous_int is not None else signal.default_int_handler)


def _log_to_file(level: int, message: str, cause: BaseException | None = None) -> None:
    """`message` (the line printed on stderr as the command ended) into the --log-file too, so a search that
    failed unwatched has its reason there; the console already shows it. `cause`: an error whose traceback
    goes with it (a plugin command's crash)."""
    exc_info = (type(cause), cause, cause.__traceback__) if cause is not None else None
    record = logging.LogRecord("na_toolkit", level, __file__, 0, message, None, exc_info)
    for h in logging.getLogger("na_toolkit").handlers:
        if getattr(h, "_na_toolkit_cli", False) and isinstance(h, logging.FileHandler):
            h.handle(record)


def main(argv: list[str] | None = None) -> int:
    with _stop_signals(command_line=argv is None), _warnings_as_lines(), _host_state(command_line=argv is None):
        return _main(argv)


@contextmanager
def _host_state(command_line: bool) -> Iterator[None]:
    """A host (or a test) calling `main(argv)` gets back what the command set for its process: the library's
    default toolkit (`get_toolkit()`: its own, not the one the command loaded with the plugins of that moment),
    and the `na_toolkit` logger (the command's handlers closed and removed, the level and propagation its
    own). The handlers left in place wrote the host's later warnings to the stderr of that moment (a test's,
    closed since: "--- Logging error ---"), kept them from the host's own handlers, and after `-q` hid them.
    The command line's own process keeps them to its exit."""
    if command_line:
        yield
        return
    from ..plugins import installed_toolkit, set_toolkit

    toolkit = installed_toolkit()
    logger = logging.getLogger("na_toolkit")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        set_toolkit(toolkit)
        for h in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """While a command runs, a Python warning (a profile of another device, a library's deprecation) is one
    `na-toolkit: warning: ...` line like every other, through logging (so -q hides it and --log-file keeps
    it), not Python's two lines with the source line that issued it."""
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, *args: Any, **kwargs: Any) -> None:
        logging.getLogger("na_toolkit").warning("warning: %s", _one_line(str(message)))

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict-plugins" in argv
    logged = False  # the --log-file handlers are this call's once it configured logging
    try:
        # -q: errors only, from the start: a broken plugin's warning, said before the command line is parsed,
        # is not shown either (an error, with --strict-plugins, is raised and said below as ever)
        quiet = "-q" in argv or "--quiet" in argv
        with open(os.devnull, "w") if quiet else nullcontext(sys.stderr) as warnings_to, redirect_stderr(warnings_to):
            toolkit = _load(strict)
            parser = build_parser(toolkit, strict)
        args, extras = parser.parse_known_args(argv)
        if extras:  # said by the command's own parser (its usage, its options), not the top level's
            _unrecognized(_innermost(parser, args), extras)
        _refuse_empty_values(parser, args)
        args._argv = argv  # the command line as given: a benchmark records how it was made
        if getattr(args, "_run", None) is None:
            parser.print_help()
            return 2
        configure_logging(args.verbose or 0, bool(args.quiet), args.log_file)
        logged = True
        if args.quiet and getattr(args, "no_progress", None) is False:  # -q: errors only, no progress bar
            args.no_progress = True
        return _exit_code(_run_command(args), args)
    except NAToolkitError as exc:
        from ..errors import ComponentError, interrupt_within

        interrupt = interrupt_within(exc)
        if interrupt is not None:  # a Ctrl-C some code reported as its own error: the user stopped the command
            return _interrupted(interrupt, logged)

        crashed = isinstance(exc, PluginCommandCrash)
        debug = logging.getLogger("na_toolkit").isEnabledFor(logging.DEBUG)
        if debug and exc.__cause__ is not None:  # -vv: where a component's own error came from
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        hint = (
            " (-vv prints its traceback)" if isinstance(exc, ComponentError | PluginCommandCrash) and not debug else ""
        )
        message = f"error: {_one_line(str(exc))}"
        print(f"na-toolkit: {message}{hint}", file=sys.stderr)
        if logged:
            _log_to_file(logging.ERROR, message, exc.__cause__ if crashed else None)
        return PLUGIN_CRASH_EXIT if crashed else 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc, logged)
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if exc.errno not in _FILE_SYSTEM_SAYS:  # a bug, with its traceback
            raise
        where = repr(str(exc.filename)) if exc.filename else "a file"
        message = f"error: cannot write {where}: {exc.strerror}; {_FILE_SYSTEM_SAYS[exc.errno]}"
        print(f"na-toolkit: {message}", file=sys.stderr)
        if logged:
            _log_to_file(logging.ERROR, message)
        return 2
    except Exception as exc:  # a bug, with its traceback; unless it stands for a Ctrl-C (errors.interrupt_within)
        from ..errors import interrupt_within

        interrupt = interrupt_within(exc)
        if interrupt is None:
            raise
        return _interrupted(interrupt, logged)


#: what to do when the file system refuses a write (a full disk, a read-only run folder) a command did not foresee:
#: one error line, not a traceback (what the command wrote before stays as it was: every output is atomic)
_FILE_SYSTEM_SAYS = {
    errno.ENOSPC: "free some space, or write somewhere else (--out)",
    errno.EDQUOT: "free some of your quota, or write somewhere else (--out)",
    errno.EROFS: "the file system is read-only: write somewhere else (--out)",
    errno.EACCES: "give a path you may write (--out)",
    errno.EPERM: "give a path you may write (--out)",
    errno.EFBIG: "the file is too large for this file system: write somewhere else (--out)",
}


def _interrupted(exc: KeyboardInterrupt, logged: bool) -> int:
    what, code = getattr(exc, "said_as", ("interrupted", 130))
    print(f"na-toolkit: {what}", file=sys.stderr)
    if logged:
        _log_to_file(logging.WARNING, what)
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
