"""Every committed benchmark result (`benchmarks/*.json`) records a command that runs today: its params are
options of its benchmark as today's CLI spells them (parsed by the real argument parser, never run), and
every input file it names is in the repository (outputs may be anywhere: a rerun writes its own)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from conftest import default_toolkit
from na_toolkit.bench import gpu_check
from na_toolkit.bench.reproduce import OUTPUT_PARAMS, PREDICTOR, committed_result, options_of, rerun
from na_toolkit.cli.main import build_parser
from na_toolkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted((REPO / "benchmarks").glob("*.json"))
#: what a value must look like to be checked as a file the command reads
PATH_SUFFIXES = (".json", ".toml", ".csv", ".onnx", ".pt", ".npz")

pytest.importorskip("na_toolkit_nb201", reason="the NB201 benchmarks' options come from its plugin")


@pytest.fixture(scope="module")
def cli() -> argparse.ArgumentParser:
    return build_parser(default_toolkit())


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _parse(parser: argparse.ArgumentParser, argv: list[str], what: str) -> argparse.Namespace:
    try:
        return parser.parse_args(argv)
    except SystemExit:  # argparse's error (printed on stderr): an option it no longer accepts, a bad value
        pytest.fail(f"{what}: today's CLI refuses {shlex.join(argv)!r}")


def _paths(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and ("/" in v or v.endswith(PATH_SUFFIXES))]


def _inputs_in_repo(values: dict[str, Any], what: str) -> None:
    for key, value in values.items():
        if key in OUTPUT_PARAMS:
            continue
        for path in _paths(value):
            assert not Path(path).is_absolute() and (REPO / path).exists(), (
                f"{what}: {key} = {path!r} is not a file of the repository; a rerun from this record cannot read it"
            )


def _checked_command(cli: argparse.ArgumentParser, doc: dict[str, Any], what: str) -> argparse.Namespace:
    """The namespace today's CLI gives for the command `doc` records (its params, or its command line); the
    input files its params name are checked to be in the repository."""
    params = doc["params"]
    name = params.get("benchmark")
    benches = _choices(_choices(cli)["bench"])
    if name in benches:
        try:
            argv = ["bench", name, *options_of(benches[name], params, what)]
        except ConfigError as e:
            pytest.fail(str(e))
        ns = _parse(cli, argv, what)
        given = {k: v for k, v in params.items() if k != "benchmark"}
        changed = {k: (v, getattr(ns, k, None)) for k, v in given.items() if getattr(ns, k, None) != v}
        assert not changed, f"{what}: the command gives other values (recorded, today): {changed}"
        _inputs_in_repo(params, what)
        recorded = (doc.get("source") or {}).get("command")
        if recorded:  # the command line it was run with parses too, to the same benchmark
            assert vars(_parse(cli, shlex.split(recorded)[1:], what))["bench"] == name
        return ns
    if what.startswith("gpu-check"):  # `python -m na_toolkit.bench.gpu_check` (benchmarks/gpu_check.sh)
        parser = gpu_check.build_parser()
        _inputs_in_repo(params, what)
        try:
            return _parse(parser, options_of(parser, params, what), what)
        except ConfigError as e:
            pytest.fail(str(e))
    command = params.get("command")
    assert command, f"{what}: records neither a benchmark of `na-toolkit bench` nor the command that made it"
    seeds = params.get("seeds") or [0]
    argv = [str(seeds[0]) if t == "S" else t for t in shlex.split(command)[1:]]  # S: each seed in turn
    return _parse(cli, argv, what)


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_a_committed_result_records_a_command_that_runs_today(cli, record):
    doc = json.loads(record.read_text())
    assert isinstance(doc.get("params"), dict), f"{record.name}: no params"
    ns = _checked_command(cli, doc, record.name)
    _inputs_in_repo({k: v for k, v in vars(ns).items() if k not in ("toolkit", "command")}, record.name)


def test_a_renamed_or_removed_option_in_a_record_is_caught(cli):
    ir = {"params": {"benchmark": "ir", "repeats": 7, "operations": "scale"}}  # the name before --moves
    with pytest.raises(pytest.fail.Exception, match="operations is no option of the benchmark today"):
        _checked_command(cli, ir, "old-ir.json")
    tmp = {"params": {"benchmark": "architecture", "nb201_result": ["/tmp/na/final/none.json"]}}
    with pytest.raises(AssertionError, match="nb201_result = '/tmp/na/final/none.json' is not a file"):
        _checked_command(cli, tmp, "old-architecture.json")
    moved = {"params": {"benchmark": "inheritance", "config": "/work/main/examples/digits-cpu.toml"}}
    with pytest.raises(AssertionError, match="config = '/work/main/examples/digits-cpu.toml' is not a file"):
        _checked_command(cli, moved, "old-inheritance.json")  # a checkout's absolute path: not the repository's
    doc = {"params": {"benchmark": "inheritance", "config": "examples/digits-cpu.toml", "seeds": 2}}
    assert _checked_command(cli, doc, "inheritance.json").config == "examples/digits-cpu.toml"


def test_a_rerun_is_refused_in_one_line_before_anything_runs(tmp_path):
    tk = default_toolkit()
    with pytest.raises(ConfigError, match=r"a 'ir' result; reruns compare nb201-search, predictor results"):
        rerun(REPO / "benchmarks" / "ir-resnet50.json", 1, tmp_path, tk)
    old = json.loads((REPO / "benchmarks" / "predictor-100.json").read_text())
    old["params"]["train_cells"] = 100  # an option the benchmark does not have
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="train_cells is no option of the benchmark today"):
        rerun(tmp_path / "old.json", 1, tmp_path, tk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # nothing ran


def test_a_fresh_result_finds_the_committed_one_of_an_older_cli(tmp_path):
    # results committed before -v/-q/--log-file left "params" record them as null; a fresh result has no such
    # keys, and is still compared with them (was: "no committed result with the same params")
    fresh = json.loads((REPO / "benchmarks" / "predictor-100.json").read_text())["params"]
    fresh = {k: v for k, v in fresh.items() if k not in ("verbose", "quiet", "log_file")}
    committed = tmp_path / "predictor-100.json"
    committed.write_text(json.dumps({"params": {**fresh, "verbose": None, "quiet": None, "log_file": None}}))
    assert committed_result(PREDICTOR, {**fresh, "seeds": 1}, tmp_path) == committed
    assert committed_result(PREDICTOR, {**fresh, "train": 99}, tmp_path) is None
