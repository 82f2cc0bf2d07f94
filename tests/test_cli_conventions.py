"""The conventions every `na-toolkit` command keeps (docs/cli.md), checked over the commands the parser has
(built-ins, plugin commands and every benchmark of `bench`), not a list written here: a description and
option help for `--help`, `--help` exiting 0, the exit status table, `-q` leaving only errors on stderr,
and no output written over a file of another kind."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from conftest import default_toolkit
from na_toolkit.cli.main import build_parser, main


@pytest.fixture(autouse=True)
def _quiet_again():
    yield
    logging.getLogger("na_toolkit").setLevel(logging.WARNING)  # main configured it for this process


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(path, parser) of every command and subcommand below `parser`, at every depth."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [((*path, name), sub), *_commands(sub, (*path, name))]
    return out


COMMANDS = _commands(build_parser(default_toolkit()))


def test_every_command_has_a_description_and_every_option_a_help():
    assert len(COMMANDS) > 30 and (("bench", "ir") in dict(COMMANDS)) and (("arch", "seeds") in dict(COMMANDS))
    missing = []
    for path, parser in COMMANDS:
        name = " ".join(path)
        description = (parser.description or "").strip()  # type: ignore[attr-defined]
        if not description or "%%" in description:  # "%%": argparse's escape, shown as it is in a description
            missing.append(f"{name}: description {description!r}")
        for action in parser._actions:  # type: ignore[attr-defined]
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) and not action.help:
                missing.append(f"{name}: {'/'.join(action.option_strings) or action.dest} has no help")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_commands_help_exits_0_with_its_description(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    captured = capsys.readouterr()
    description = dict(COMMANDS)[path].description  # type: ignore[attr-defined]
    assert " ".join(description.split()[:4]) in " ".join(captured.out.split())
    assert captured.err == ""


def _inf_network(path: Path) -> Path:
    """A valid architecture whose output overflows float32 (140 doublings): ONNX Runtime and torch both give
    inf, whose difference is NaN, so `--check` fails on a network that is no bad input."""
    nodes = [{"id": "c", "type": "conv2d", "attrs": {"filters": 2, "kernel": 1}, "inputs": ["input"]}]
    for i in range(140):
        prev = nodes[-1]["id"]
        nodes.append({"id": f"a{i}", "type": "add", "attrs": {}, "inputs": [prev, prev]})
    nodes += [
        {"id": "g", "type": "global_avg_pool", "attrs": {}, "inputs": [nodes[-1]["id"]]},
        {"id": "f", "type": "flatten", "attrs": {}, "inputs": ["g"]},
        {"id": "l", "type": "linear", "attrs": {"units": 2}, "inputs": ["f"]},
    ]
    doc = {"schema_version": 1, "name": "inf", "input_shape": [1, 2, 2], "output": "l", "nodes": nodes}
    path.write_text(json.dumps(doc))
    return path


def test_a_failed_parity_check_exits_1_not_2(tmp_path, capsys):
    # the input is fine (exit 2 would say to fix it): the work's own check failed
    arch = _inf_network(tmp_path / "inf.json")
    assert main(["arch", "export", str(arch), "--onnx", str(tmp_path / "inf.onnx"), "--check", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["arch"] == str(arch)
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert captured.err.startswith("na-toolkit: error: ONNX Runtime and torch differ by nan")


@pytest.mark.parametrize(
    ("argv", "kept", "kind"),
    [
        (["arch", "export", "simple-cnn", "--onnx", "{f}"], "table.csv", ".onnx"),
        (["arch", "import", "{model}", "--out", "{f}"], "search.toml", ".json"),
        (
            [
                "predict",
                "fit",
                "--data",
                "{data}",
                "--target",
                "accuracy",
                "--predictor",
                "bayesian-ridge",
                "--out",
                "{f}",
            ],
            "notes.txt",
            ".json",
        ),
        (["bench", "ir", "--repeats", "1", "--networks", "1", "--out", "{f}"], "search.toml", ".json"),
    ],
    ids=["arch-export", "arch-import", "predict-fit", "bench"],
)
def test_an_output_is_not_written_over_a_file_of_another_kind(tmp_path, capsys, argv, kept, kind):
    # before, each replaced the file with its ONNX model / JSON: a config or a table lost to a typo
    target = tmp_path / kept
    target.write_text("precious = 1\n")
    model = tmp_path / "m.onnx"
    if "{model}" in argv:
        assert main(["arch", "export", "simple-cnn", "--onnx", str(model)]) == 0
    data = tmp_path / "d.jsonl"
    rows = [("simple-cnn", 0.5), ("resnet-cifar", 0.6), ("mobilenetv2-cifar", 0.55)]
    data.write_text("".join(json.dumps({"arch": s, "accuracy": a}) + "\n" for s, a in rows))
    capsys.readouterr()
    values = {"f": str(target), "model": str(model), "data": str(data)}
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"{str(target)!r}: it is an existing file that is not a {kind} file" in err, err
    assert target.read_text() == "precious = 1\n"
    # a file of the kind the command writes is replaced, as a command run again does
    same = tmp_path / f"again{kind}"
    if argv[0] != "bench":  # (the benchmark itself is not run here)
        assert main([a.format(**{**values, "f": str(same)}) for a in argv]) == 0
        first = same.read_bytes()
        same.write_bytes(first + b" " if kind == ".json" else first)  # the same document, another file
        assert main([a.format(**{**values, "f": str(same)}) for a in argv]) == 0
        assert same.read_bytes().rstrip() == first.rstrip() and same.stat().st_size == len(first)


def _saved_predictor(tmp_path: Path) -> Path:
    data = tmp_path / "d.jsonl"
    rows = [("simple-cnn", 0.5), ("resnet-cifar", 0.6), ("mobilenetv2-cifar", 0.55)]
    data.write_text("".join(json.dumps({"arch": s, "accuracy": a}) + "\n" for s, a in rows))
    out = tmp_path / "pred.json"
    assert main(["predict", "fit", "--data", str(data), "--target", "accuracy", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("argv", "victim", "said"),
    [
        (["arch", "import", "{model}", "--out", "{f}"], "profile", "an existing device profile, not an architecture"),
        (
            ["arch", "import", "{model}", "--out", "{f}"],
            "predictor",
            "an existing saved predictor, not an architecture",
        ),
        (["arch", "import", "{model}", "--out", "{f}"], "other", "an existing file that is not an architecture"),
        (
            ["predict", "fit", "--data", "{data}", "--target", "accuracy", "--out", "{f}"],
            "architecture",
            "an existing architecture, not a saved predictor",
        ),
        (["hw", "calibrate", "--out", "{f}"], "config", "an existing search config, not a hardware model"),
        (
            ["bench", "ir", "--repeats", "1", "--networks", "1", "--out", "{f}"],
            "record",
            "an existing result of bench latency, not a result of bench ir",
        ),
    ],
    ids=["import-over-profile", "import-over-predictor", "import-over-json", "fit-over-arch", "calibrate", "bench"],
)
def test_an_output_is_not_written_over_another_document_of_its_suffix(tmp_path, capsys, argv, victim, said):
    # before, only the suffix was checked: `hw calibrate --out cfg.toml` turned a search config into a hardware
    # model and `arch import --out prof.json` replaced a device profile with an architecture, both exit 0
    from conftest import REPO_ROOT

    sources = {
        "profile": REPO_ROOT / "profiles" / "example-cpu.json",
        "config": REPO_ROOT / "examples" / "digits-cpu.toml",
        "record": REPO_ROOT / "benchmarks" / "latency.json",
    }
    model = tmp_path / "m.onnx"
    assert main(["arch", "export", "simple-cnn", "--onnx", str(model)]) == 0
    target = tmp_path / ("victim.toml" if victim == "config" else "victim.json")
    if victim in sources:
        target.write_bytes(sources[victim].read_bytes())
    elif victim == "predictor":
        target.write_bytes(_saved_predictor(tmp_path).read_bytes())
    elif victim == "architecture":
        assert main(["arch", "import", str(model), "--out", str(target)]) == 0
    else:
        target.write_text('{"notes": "mine"}')
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"arch": "simple-cnn", "accuracy": 0.5}) + "\n")
    before = target.read_bytes()
    capsys.readouterr()
    assert main([a.format(f=str(target), model=str(model), data=str(data)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"{str(target)!r}: it is {said}, which this command would overwrite" in err, err
    assert len(err.strip().splitlines()) == 1 and target.read_bytes() == before


def test_quiet_leaves_warnings_off_stderr_and_json_on_stdout(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    rows = [("simple-cnn", 0.5), ("resnet-cifar", 0.6), ("nb201", 0.55)]
    data.write_text("".join(json.dumps({"arch": s, "accuracy": a}) + "\n" for s, a in rows))
    model = tmp_path / "p.json"
    fit = ["predict", "fit", "--data", str(data), "--target", "accuracy", "--predictor", "bayesian-ridge"]
    assert main([*fit, "--out", str(model)]) == 0
    capsys.readouterr()
    # mobilenetv2-cifar is far from the three: a warning that the prediction is an extrapolation
    assert main(["predict", "mobilenetv2-cifar", "--model", str(model), "--json"]) == 0
    loud = capsys.readouterr()
    assert json.loads(loud.out)["predictions"][0]["outside_training_domain"]
    assert "na-toolkit: warning: mobilenetv2-cifar lies outside what the predictor was trained on" in loud.err
    assert main(["predict", "mobilenetv2-cifar", "--model", str(model), "--json", "-q"]) == 0
    quiet = capsys.readouterr()
    assert json.loads(quiet.out) == json.loads(loud.out) and quiet.err == ""


def test_an_architecture_file_of_another_kind_is_named_in_the_error(tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    assert main(["arch", "show", str(table)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"na-toolkit: error: architecture file {str(table)!r}: malformed architecture JSON")
    assert err.count("\n") == 1


def test_runs_of_a_file_says_it_is_no_folder(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text("x = 1\n")
    assert main(["runs", str(config)]) == 2
    assert f"{str(config)!r} is a file, not a folder of runs" in capsys.readouterr().err


def test_quiet_leaves_a_benchmarks_progress_off_stderr(tmp_path, capsys):
    argv = ["bench", "ir", "--repeats", "1", "--seconds", "0.05", "--networks", "1", "--walk-length", "2", "--json"]
    argv += ["--out", str(tmp_path / "ir.json")]
    assert main(argv) == 0
    loud = capsys.readouterr()
    assert "bench ir: moves window 1/1" in loud.err and json.loads(loud.out)["params"]["repeats"] == 1
    assert f"na-toolkit: wrote {tmp_path / 'ir.json'}" in loud.err  # where it wrote, off stdout
    assert main([*argv, "-q"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and json.loads(quiet.out)["params"]["repeats"] == 1


def test_quiet_leaves_the_progress_bar_off_stderr(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(
        'seed_network = "simple-cnn"\nevaluations = 1\nevaluator = "synthetic"\n'
        '[devices.cpu]\ntime_model = { name = "roofline", options = { device = "x86-cpu" } }\n'
    )
    argv = ["search", str(config), "--output", str(tmp_path / "runs"), "--json"]
    assert main(argv) == 0
    loud = capsys.readouterr()
    assert "search:" in loud.err and json.loads(loud.out)  # the bar, on stderr
    assert main([*argv, "-q"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and json.loads(quiet.out)


def test_an_option_the_moves_tour_would_ignore_is_refused(capsys):
    # `demo --move scale --dataset nosuch/` ran the tour (exit 0) and ignored the dataset
    assert main(["demo", "--move", "scale", "--steps", "1", "--dataset", "nosuch/"]) == 2
    assert "--dataset and --resize choose the search's data; the --move tour" in capsys.readouterr().err


def test_the_moves_tour_checks_its_input_before_it_prints_anything(capsys):
    # before: the seeds table was printed, then the error; and a move that applies nowhere ended the tour "done"
    assert main(["demo", "--move", "insert_se"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "unknown move 'insert_se'" in err
    assert main(["demo", "--move", "remove", "--arch", "simple-cn"]) == 2
    assert capsys.readouterr().out == ""
    tk = default_toolkit()
    nowhere = [n for n in tk.moves.names() if not tk.moves.get(n).is_applicable(tk.seed("simple-cnn"))]
    assert nowhere, "a move that does not apply to simple-cnn (the NAS-Bench-201 cell edit, say)"
    assert main(["demo", "--move", nowhere[0], "--steps", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"no move of {nowhere[0]} applies to simple-cnn" in err


def test_quiet_hides_the_warnings_said_while_the_plugins_load(monkeypatch, capsys):
    monkeypatch.setenv("NA_TOOLKIT_DISABLE_PLUGINS", "nosuchplug")  # a name no plugin has: a warning
    assert main(["hw", "list"]) == 0
    assert "plugin nosuchplug: named in NA_TOOLKIT_DISABLE_PLUGINS" in capsys.readouterr().err
    for argv in (["hw", "list", "-q"], ["-q", "hw", "list"]):
        assert main(argv) == 0
        quiet = capsys.readouterr()
        assert quiet.err == "" and "x86-cpu" in quiet.out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["arch", "export", "simple-cnn", "--onnx", "{tmp}/a.onnx", "--seed", "-1"], "argument --seed: must be >= 0"),
        (["arch", "export", "simple-cnn", "--onnx", "{tmp}/a.onnx", "--batch-size", "1" + "0" * 20], "<= 1000000"),
        (["hw", "estimate", "simple-cnn", "--device", "x86-cpu", "--batch-size", "1" + "0" * 20], "<= 1000000"),
        (["demo", "--move", "insert_conv", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["demo", "--move", "insert_conv", "--seed", "1" + "0" * 20], "must be <= 9223372036854775807"),
        (["predict", "fit", "--train", "20", "--seed", "-1", "--out", "{tmp}/p.json"], "must be >= 0, got -1"),
        (["predict", "fit", "--train", "20", "--seed", "1" + "0" * 20, "--out", "{tmp}/p.json"], "<= 4294967295"),
    ],
)
def test_a_seed_or_batch_size_numpy_torch_or_onnx_cannot_take_is_a_usage_error(tmp_path, capsys, argv, said):
    # each was a traceback from numpy, scikit-learn or onnx (exit 1) once the work began
    with pytest.raises(SystemExit) as exit_:
        assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
        raise SystemExit(2)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and said in err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["evaluate", "simple-cnn", "--dataset", ""], "evaluate: error: argument --dataset: an empty value ('')"),
        (["hw", "calibrate", "--out", ""], "hw calibrate: error: argument --out: an empty value ('')"),
        (["runs", ""], "runs: error: argument folder: an empty value ('')"),
        (["--log-file", " ", "arch", "seeds"], "arch seeds: error: argument --log-file: an empty value (' ')"),
        (["predict", "fit", "--predictor", "", "--train", "20"], "error: argument --predictor: an empty value"),
        (["hw", "estimate", "simple-cnn", "--device", "x86-cpu", "--time-model", ""], "argument --time-model: an"),
    ],
)
def test_an_empty_value_is_refused_naming_the_argument_not_read_as_left_out(tmp_path, capsys, monkeypatch, argv, said):
    # each did what the option left out does: trained on digits, printed the model, listed ./runs, fitted the
    # default predictor, estimated with the default time model; all exit 0
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and said in err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["arch", "export", "simple-cnn", "--onnx", "{tmp}/net.json"], "it would be an ONNX model; give a path ending"),
        (["arch", "import", "{model}", "--out", "{tmp}/net.onnx"], "it would be an architecture; give a path"),
        (["profile", "--out", "{tmp}/p.onnx", "--time-budget-s", "0"], "a device profile is a JSON file; give a path"),
    ],
)
def test_a_new_output_of_a_suffix_its_readers_take_for_another_kind_is_refused(tmp_path, capsys, argv, said):
    # written all the same (exit 0), each was then misread by its suffix: `arch show net.json` as architecture
    # JSON ("not UTF-8 text"), `arch show net.onnx` as ONNX, `hw show p.onnx` as a hardware model
    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    assert main(["arch", "export", "simple-cnn", "--onnx", str(model)]) == 0
    capsys.readouterr()
    assert main([a.replace("{tmp}", str(tmp_path)).replace("{model}", str(model)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["hw", "calibrate", "--repeats", "1" + "0" * 20], "--repeats must be <= 1000, got 1" + "0" * 20),
        (["demo", "--move", "insert_conv", "--steps", "1" + "0" * 20], "--steps must be in [0, 1000], got 1"),
    ],
)
def test_a_count_that_would_run_for_ever_is_refused_before_any_work(capsys, argv, said):
    # each was taken: calibration and the moves tour ran until killed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "calibrating" not in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["demo", "--steps", "3"], "--steps is the --move tour's (moves it applies); the search takes none"),
        (
            ["hw", "estimate", "simple-cnn", "--device", "x86-cpu", "--option", "dtype=int8", "--option", "dtype=fp32"],
            "--option dtype is given twice; give it once",
        ),
        (
            ["predict", "fit", "--param", "n_estimators=5", "--param", "n_estimators=9", "--out", "p.json"],
            "--param n_estimators is given twice; give it once",
        ),
    ],
)
def test_an_option_that_would_be_ignored_or_overridden_is_refused(tmp_path, monkeypatch, capsys, argv, said):
    # the demo ran its whole search ignoring --steps; a KEY given twice kept its last value, silently
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"na-toolkit: error: {said}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["search", "{hw}"], "config file '{hw}' is a hardware model, not a search config"),
        (["search", "{profile}"], "config file '{profile}' is a device profile, not a search config"),
        (["search", "{arch}"], "config file '{arch}' is an architecture, not a search config"),
        (["hw", "show", "{config}"], "file '{config}' is a search config, not a hardware model"),
        (["hw", "estimate", "nb201", "--device", "{config}"], "file '{config}' is a search config, not a hardware"),
        (["arch", "show", "{profile}"], "architecture file '{profile}' is a device profile, not an architecture"),
    ],
)
def test_a_toolkit_document_of_another_kind_is_named_as_what_it_is(tmp_path, capsys, argv, said):
    # each was said as the wrong format's failure: "not valid TOML", "schema_version: unknown key. ... (and 12
    # more problems)", "key 'schema_version': missing; add `schema_version = 1`", "unknown architecture field(s)"
    from conftest import REPO_ROOT

    files = {
        "hw": REPO_ROOT / "hwmodels" / "x86-cpu.toml",
        "profile": REPO_ROOT / "profiles" / "example-cpu.json",
        "config": REPO_ROOT / "examples" / "nb201-pixel3.toml",
        "arch": tmp_path / "net.json",
    }
    default_toolkit().seed("simple-cnn").save(files["arch"])
    fill = {k: str(v) for k, v in files.items()}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"na-toolkit: error: {said.format(**fill)}")
