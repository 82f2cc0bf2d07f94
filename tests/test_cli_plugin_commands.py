"""A third-party plugin's CLI commands: a broken one is left out with a warning naming its plugin, and every
other command keeps working. The plugin is a real distribution (a `*.dist-info` with an entry point on
sys.path), loaded by `main` as an installed one is."""

from __future__ import annotations

import pytest

from na_toolkit.cli.main import main
from na_toolkit.plugins import ALLOW_ENV, DENY_ENV

COMMANDS_PLUGIN = """
import na_toolkit
from na_toolkit.cli.command import Command


def _clashes(p):
    p.add_argument("-v", "--verbose", action="store_true")  # every command already has -v


def _words(p):
    p.add_argument("word")


def _hello(args):
    print(f"hello {args.word}")
    return 0


def _share(args):
    return len(args.word) // 0  # a bug of the plugin's


def _refuse(args):
    from na_toolkit.errors import ConfigError

    raise ConfigError(f"{args.word!r} is no size: give one in MB")


def _ctrl_c_in_an_import(args):
    # what pybind11 makes of a Ctrl-C while it initialises a C extension (scipy's, torch's)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        raise ImportError("initialization failed") from exc


@na_toolkit.hookimpl
def na_register_commands(registry):
    registry.add(Command("cmdplug-hello", "say hello", _words, _hello))
    registry.add(Command("cmdplug-ctrlc", "pressed Ctrl-C in an import", _words, _ctrl_c_in_an_import))
    registry.add(Command("cmdplug-share", "divides", _words, _share))
    registry.add(Command("cmdplug-refuse", "refuses its input", _words, _refuse))
    registry.add(Command("cmdplug-clash", "clashes with -v", _clashes, _hello))
    registry.add(Command("cmdplug-text", "returns a text", _words, lambda args: "oops"))
    registry.add(Command("cmdplug-none", "runs nothing", _words, None))


def _broken(p):
    raise RuntimeError("no GPU here")


@na_toolkit.hookimpl
def na_register_benchmarks(registry):
    from na_toolkit.bench.base import Benchmark

    registry.add(Benchmark("cmdplug-broken", "needs a GPU", _broken, lambda args, toolkit: {}))
    registry.add(Benchmark("cmdplug-lookup", "looks up", lambda p: None, lambda args, toolkit: {}["gpu"]))
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The plugin `cmdplug` (distribution cmdplug-dist 0.3) installed in a folder on sys.path."""
    module = "cmdplug_commands_for_tests"
    info = tmp_path / "cmdplug_dist-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cmdplug-dist\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[na_toolkit]\ncmdplug = {module}\n")
    (tmp_path / f"{module}.py").write_text(COMMANDS_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, module, raising=False)
    monkeypatch.setenv(ALLOW_ENV, "cmdplug")
    monkeypatch.delenv(DENY_ENV, raising=False)


def test_a_command_that_cannot_set_up_its_arguments_is_left_out_and_the_others_work(installed, capsys):
    assert main(["cmdplug-hello", "world"]) == 0
    out, err = capsys.readouterr()
    assert out == "hello world\n"
    warnings = sorted(line for line in err.splitlines() if line.startswith("na-toolkit: warning:"))
    prefix = "na-toolkit: warning: plugin cmdplug (cmdplug-dist 0.3): "
    assert len(warnings) == 3  # each once, though the parser is built twice
    # a benchmark is a subcommand of `bench`: a broken one is left out of it alone
    assert warnings[0] == (
        f"{prefix}benchmark 'cmdplug-broken' cannot set up its arguments (RuntimeError: no GPU here); it is left out"
    )
    assert warnings[1] == (
        f"{prefix}command 'cmdplug-clash' cannot set up its arguments (ArgumentError: argument -v/--verbose: "
        "conflicting option strings: -v, --verbose); it is left out"
    )
    assert warnings[2].startswith(
        f"{prefix}command 'cmdplug-none' cannot set up its arguments (TypeError: its configure and run must be "
        "functions, got <function _words"
    )
    assert warnings[2].endswith(", None); it is left out")
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0 and "architecture" in capsys.readouterr().out
    # the built-in commands are untouched
    assert main(["hw", "list"]) == 0 and "h100-sxm" in capsys.readouterr().out
    # a command left out is unknown to the parser, as any other misspelt command
    with pytest.raises(SystemExit) as exit_:
        main(["cmdplug-clash"])
    assert exit_.value.code == 2 and "invalid choice: 'cmdplug-clash'" in capsys.readouterr().err


def test_strict_plugins_makes_a_broken_command_an_error(installed, capsys):
    assert main(["--strict-plugins", "hw", "list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("na-toolkit: error: plugin cmdplug (cmdplug-dist 0.3): ")
    assert "cannot set up its arguments" in err[0] and "left out" not in err[0]


def test_a_command_that_returns_no_exit_status_is_named_with_its_plugin(installed, capsys):
    assert main(["cmdplug-text", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "na-toolkit: error: plugin cmdplug (cmdplug-dist 0.3): command 'cmdplug-text' returned 'oops'; a command's "
        "run(args) returns an exit status"
    )


def test_a_plugin_command_that_crashes_names_its_plugin_and_exits_3(installed, capsys, tmp_path):
    """Its own error (a bug of the plugin) is one line naming the plugin and its version, exit 3, not a raw
    traceback (exit 1); -vv prints the traceback, --log-file keeps it. A toolkit error it raises is said as
    every command's (one line, exit 2)."""
    line = (
        "na-toolkit: error: plugin cmdplug (cmdplug-dist 0.3): command 'cmdplug-share' failed: ZeroDivisionError: "
        "integer division or modulo by zero; a bug of the plugin, not of your input: report it to its authors"
    )
    log = tmp_path / "na.log"
    assert main(["cmdplug-share", "cake", "--log-file", str(log)]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == f"{line} (-vv prints its traceback)"
    logged = log.read_text()
    assert line.removeprefix("na-toolkit: ") in logged and "Traceback" in logged and "in _share" in logged
    assert main(["-vv", "cmdplug-share", "cake"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "in _share" in err and err.endswith(f"\n{line}\n")
    # a plugin's benchmark, run by the built-in `bench`: the same
    assert main(["bench", "cmdplug-lookup"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == (
        "na-toolkit: error: plugin cmdplug (cmdplug-dist 0.3): benchmark 'cmdplug-lookup' failed: KeyError: 'gpu'; "
        "a bug of the plugin, not of your input: report it to its authors (-vv prints its traceback)"
    )
    # a toolkit error of the plugin's: as every command's
    assert main(["cmdplug-refuse", "big"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "na-toolkit: error: 'big' is no size: give one in MB"


def test_a_ctrl_c_that_a_c_extension_turned_into_an_import_error_ends_as_a_ctrl_c(installed, capsys):
    """pybind11 reports a Ctrl-C pressed while it initialises a module as `ImportError: initialization failed`,
    raised from the KeyboardInterrupt: the user stopped the command, so it ends as Ctrl-C does (one line, exit
    130), not as the plugin's crash (exit 3) nor as an error (exit 2)."""
    assert main(["cmdplug-ctrlc", "now"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "na-toolkit: interrupted"
