"""`na-toolkit bench NAME [args] --json`: run a benchmark, print one JSON object (figures, params, source,
machine).

One subcommand per benchmark registered in the toolkit (`toolkit.benchmarks`, filled by the
`na_register_benchmarks` hook: the built-in ones and those of installed plugins).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, UnknownComponentError
from ..files import (
    DEVICE_PROFILE,
    LATENCY_DUMP,
    benchmark_result,
    looks_like_path,
    path_exists,
    strict_json_text,
    write_text_atomic,
)
from ._output import check_out, notice
from .command import Command, plugin_crashes, sets_up

if TYPE_CHECKING:
    from ..toolkit import Toolkit

#: argument names that are not the benchmark's parameters (the CLI's own, and how it dispatches)
NOT_PARAMS = frozenset(
    {
        "json",
        "out",
        "bench",
        "_benchmark",
        "_run",
        "_plugin",
        "_strict_plugins",
        "_argv",
        "command",
        "strict_plugins",
        "toolkit",
        "verbose",
        "quiet",
        "log_file",
    }
)


def _argparse_text(text: str) -> str:
    """A benchmark's help line as argparse wants it: argparse %-formats help strings, so a literal "±10%"
    in a docstring would crash `na-toolkit bench --help`."""
    return text.replace("%", "%%")


def configure(parser: argparse.ArgumentParser) -> None:
    # the CLI's main sets the toolkit it built as this parser's default before asking for the arguments
    toolkit: Toolkit | None = parser.get_default("toolkit")
    if toolkit is None:
        raise ConfigError("the bench command needs its toolkit: build its parser with na_toolkit.cli.main")
    strict = bool(parser.get_default("_strict_plugins"))
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, benchmark in toolkit.benchmarks.items():
        setup = functools.partial(_configure_one, name=name, configure=benchmark.configure)
        if sets_up(f"benchmark {name!r}", toolkit.benchmarks.plugin_of(name), setup, toolkit, strict):
            # the help line is %-formatted by argparse, the description is not (it would show "%%")
            setup(sub.add_parser(name, help=_argparse_text(benchmark.help), description=benchmark.help))


def _configure_one(p: argparse.ArgumentParser, *, name: str, configure: Any) -> None:
    configure(p)  # its arguments' help strings are argparse's (`%(default)s` works there)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.add_argument("--out", help="also write the JSON result to this file")
    p.set_defaults(_benchmark=name)


#: options of the benchmarks that name a file written at the end, and whether a missing folder is made for it
OUTPUTS = {"out": False, "plot": False, "dump": False, "profile_out": True}
#: the kind of file each writes: an existing file of another kind (a config, a table) is not overwritten
OUTPUT_SUFFIXES = {"out": (".json",), "plot": (".png",), "dump": (".json",), "profile_out": (".json",)}
#: the document a benchmark's output is (`files.document_kind`; every `--out`: that benchmark's result): an
#: existing file that is another one (an architecture, another benchmark's result) is not overwritten
OUTPUT_KINDS = {("latency", "dump"): LATENCY_DUMP, ("latency", "profile_out"): DEVICE_PROFILE}


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path the benchmark writes, checked before it runs (a benchmark runs for minutes: an
    unwritable path found at the end would lose its result): ConfigError in one line naming the option.
    An output may not be a file the benchmark reads (any other option's value that is an existing file)."""
    inputs = [v for k, v in vars(args).items() if isinstance(v, str) and k not in ("bench", "_benchmark", *OUTPUTS)]
    # a repeatable option of the benchmark's (`bench latency --heldout-seed`) names its files in a list
    lists = [v for k, v in vars(args).items() if isinstance(v, list) and k not in NOT_PARAMS]
    inputs += [x for v in lists for x in v if isinstance(x, str)]
    for name, make_folders in OUTPUTS.items():
        path = getattr(args, name, None)
        if not isinstance(path, str) or not path:
            continue
        option, suffixes = "--" + name.replace("_", "-"), OUTPUT_SUFFIXES[name]
        kind = benchmark_result(args.bench) if name == "out" else OUTPUT_KINDS.get((args.bench, name))
        check_out(path, option, ConfigError, make_folders=make_folders, inputs=inputs, suffixes=suffixes, kind=kind)
    chosen = [(k, os.path.abspath(v)) for k in OUTPUTS if isinstance(v := getattr(args, k, None), str) and v]
    for i, (a, pa) in enumerate(chosen):
        for b, pb in chosen[i + 1 :]:
            if pa == pb:
                raise ConfigError(
                    f"--{a.replace('_', '-')} and --{b.replace('_', '-')} name the same file {pa!r}; give two paths"
                )


def _json(value: Any, **kwargs: Any) -> str:
    return strict_json_text(value, **kwargs)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in NOT_PARAMS}


def _source(args: argparse.Namespace) -> dict[str, Any]:
    """How the result was made: the command line (None when the parser was driven without one, as tests do)
    and the code's git commit (`machine.source_revision`; None outside a git checkout)."""
    from ..machine import source_revision

    argv = getattr(args, "_argv", None)
    revision = source_revision() or {}
    return {
        "command": None if argv is None else shlex.join(["na-toolkit", *recorded_argv(argv, args)]),
        "commit": revision.get("commit"),
        "dirty": revision.get("dirty"),
    }


def recorded_argv(argv: Sequence[str], args: argparse.Namespace) -> list[str]:
    """The command line as a result records it: a file of the repository relative to it (`--out
    benchmarks/x.json`, from whichever checkout and folder it ran; `bench.reproduce.shown`, as `bench
    architecture` names files), an output outside it by its file name alone (`--out /tmp/x/y.json`: `y.json`; a
    scratch path names one machine's folder, nothing about the result), other arguments as given."""
    from ..bench.reproduce import REPO_ROOT, shown

    outputs = {v for k in OUTPUTS if isinstance(v := getattr(args, k, None), str) and v}
    recorded = []
    for token in argv:
        flag, eq, value = token.partition("=") if token.startswith("--") else ("", "", token)
        if not eq and flag:  # `--out` itself: its value is the next token
            recorded.append(token)
            continue
        if value in outputs:
            value = shown(value) if Path(value).resolve().is_relative_to(REPO_ROOT) else Path(value).name
        elif looks_like_path(value) and path_exists(value):
            value = shown(value)
        recorded.append(flag + eq + value)
    return recorded


def run(args: argparse.Namespace) -> int:
    from ..machine import machine_info

    toolkit: Toolkit = args.toolkit
    if args.bench not in toolkit.benchmarks:
        raise UnknownComponentError("benchmark", args.bench, toolkit.benchmarks.names())
    check_outputs(args)
    # stdout holds only the answer: what libraries print while the benchmark runs (Ray's driver prints its
    # raylet's warnings on stdout) goes to stderr; with -q (errors only) its progress lines go nowhere (an
    # error still ends it as one line, and warnings go through logging, whose handler keeps the real stderr)
    what, plugin = f"benchmark {args.bench!r}", toolkit.benchmarks.plugin_of(args.bench)
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(open(os.devnull, "w")) if getattr(args, "quiet", False) else sys.stderr
        stack.enter_context(contextlib.redirect_stdout(progress))
        stack.enter_context(contextlib.redirect_stderr(progress))
        stack.enter_context(plugin_crashes(toolkit, plugin, what))
        figures = toolkit.benchmarks.get(args.bench).run(args, toolkit)
    result = {
        **figures,
        "params": {"benchmark": args.bench, **_params(args)},
        "source": _source(args),
        "machine": machine_info(),
    }
    text = _json(result, indent=2)
    if args.out:
        write_text_atomic(Path(args.out), text + "\n")
        notice(f"na-toolkit: wrote {args.out}")  # stderr: stdout holds the figures only
    if args.json:
        print(text)
    else:
        for k, v in figures.items():
            print(f"{k}: {_json(v)}", file=sys.stdout)
    return 0


COMMANDS = (Command("bench", "run a benchmark and print its figures (JSON with --json)", configure, run),)
