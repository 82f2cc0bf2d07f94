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


def test_a_python_warning_is_one_line_that_quiet_hides(tmp_path, capsys):
    # a profile of another CPU: the learned model warns (ProfileDeviceWarning) whatever this machine is
    import json

    from conftest import REPO_ROOT

    doc = json.loads((REPO_ROOT / "profiles" / "example-cpu.json").read_text())
    doc["device"]["name"] = doc["device"]["cpu_model"] = "Imaginary CPU 9000"
    (tmp_path / "other.json").write_text(json.dumps(doc))
    config = tmp_path / "s.toml"
    config.write_text(
        f'seed_network = "simple-cnn"\nevaluations = 1\nevaluator = "synthetic"\noutput = "{tmp_path / "runs"}"\n'
        '[devices.cpu]\ntime_model = { name = "learned", options = { device = "other.json" } }\n'
    )
    assert main(["search", str(config), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "warning:" not in out  # before: the run's warnings were printed again on stdout, where -q left them
    lines = [line for line in err.splitlines() if "was measured on 'Imaginary CPU 9000'" in line]
    # once, as the run's warning with what it means (the model's own warning at build time is not repeated)
    assert len(lines) == 1 and lines[0].startswith("na-toolkit: warning: devices.cpu.time_model: profile ")
    assert "the search judges the budgets of device 'cpu' by that device's latencies" in lines[0]
    assert "ProfileDeviceWarning" not in err and "learned.py" not in err  # not Python's two-line form
    assert main(["search", str(config), "--no-progress", "-q", "--output", str(tmp_path / "q")]) == 0
    out, err = capsys.readouterr()
    assert "was measured on" not in err + out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["arch", "seeds", "--jsno"],
            "na-toolkit arch seeds: error: unrecognized arguments: --jsno. Did you mean '--json'?",
        ),
        (
            ["bench", "ir", "--repeets", "3"],
            "na-toolkit bench ir: error: unrecognized arguments: --repeets 3. Did you mean '--repeats'?",
        ),
        (["hw", "show", "x", "--nope"], "na-toolkit hw show: error: unrecognized arguments: --nope\n"),
    ],
)
def test_a_misspelt_option_is_said_by_the_command_with_the_close_option(run_cli, argv, said):
    # argparse said it with the top level's usage (`na-toolkit [-h] ... COMMAND ...`) and no hint
    result = run_cli(*argv)
    assert result.returncode == 2
    assert said in result.stderr
    assert f"usage: na-toolkit {' '.join(argv[:2])} [-h]" in result.stderr


def test_main_in_process_gives_the_host_its_logging_back(tmp_path, capsys):
    """A host (a test) calling main(argv) keeps its own logging: the command's handlers wrote the host's later
    warnings to the stderr of the call (a test's, closed since: "--- Logging error ---"), kept them from the
    host's own handlers, and after -q hid them. The command still logs as asked while it runs."""
    logger = logging.getLogger("na_toolkit")
    before = (list(logger.handlers), logger.level, logger.propagate)
    log = tmp_path / "hw.log"
    assert main(["hw", "show", "nosuch-board", "-q", "--log-file", str(log)]) == 2
    assert "nosuch-board" in capsys.readouterr().err and "nosuch-board" in log.read_text()
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    assert logging.getLogger("na_toolkit.search").isEnabledFor(logging.WARNING)  # -q is not the host's


def test_main_in_process_gives_the_host_its_default_toolkit_back(monkeypatch, capsys):
    """The toolkit main(argv) loads (with the plugins that process allows then) was left the library's process
    default: a host's (a later test's) run_search or get_toolkit() then had the command's plugin selection,
    and its pool workers were sent it (a test plugin installed for one test was asked of them later)."""
    from na_toolkit.plugins import ALLOW_ENV, get_toolkit

    mine = get_toolkit()
    monkeypatch.setenv(ALLOW_ENV, "")  # the command loads the built-ins alone
    assert main(["arch", "seeds"]) == 0 and "simple-cnn" in capsys.readouterr().out
    assert get_toolkit() is mine


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("search.toml", 'seed_network = "nb201"\nevaluations = 2\n', "an existing search config"),
        ("notes.json", '{"a": 1}', "an existing .json file, not a log"),
        ("model.onnx", "\x00garbage", "an existing .onnx file, not a log"),
    ],
)
def test_a_log_file_that_is_an_existing_document_is_refused_and_left_as_it_was(tmp_path, capsys, name, content, said):
    # the file handler appends: `--log-file search.toml search search.toml` made the config unreadable
    doc = tmp_path / name
    doc.write_text(content)
    assert main(["arch", "seeds", "--log-file", str(doc)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--log-file {doc}: it is {said}" in err and "Traceback" not in err
    assert doc.read_text() == content


def test_a_log_file_may_be_an_empty_or_new_file_of_any_name(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    for log in (empty, tmp_path / "new.log"):
        assert main(["hw", "show", "nosuch-board", "--log-file", str(log)]) == 2
        assert "nosuch-board" in log.read_text()
    capsys.readouterr()
