"""The flags every command has (-v, -q, --log-file) go before or after any command, nested ones included
(`hw calibrate -v`, `bench ir -q`), as docs/cli.md says."""

from __future__ import annotations

import logging

import pytest

from na_toolkit.cli.main import main


@pytest.fixture(autouse=True)
def _quiet_again():
    yield
    logging.getLogger("na_toolkit").setLevel(logging.WARNING)  # main configured it for this process


@pytest.mark.parametrize("argv", [["hw", "list", "-q"], ["arch", "show", "simple-cnn", "-q"], ["hw", "-q", "list"]])
def test_the_logging_flags_follow_a_nested_command(argv, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out


def test_a_nested_command_reads_them_as_given_not_ignored(tmp_path, capsys):
    # both given after the nested command: they are parsed there, so their contradiction is reported
    assert main(["hw", "list", "-q", "-v"]) == 2
    assert "--verbose and --quiet contradict each other" in capsys.readouterr().err
    log = tmp_path / "hw.log"
    assert main(["hw", "show", "nosuch-board", "--log-file", str(log)]) == 2
    assert "nosuch-board" in capsys.readouterr().err and "nosuch-board" in log.read_text()


def test_a_benchmarks_help_lists_them(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "ir", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "-q, --quiet" in out and "--log-file PATH" in out
