"""A bounded fuzz suite of the CLI's readers (issue 11): every malformed input is exit 2 with one
`na-toolkit: error:` line and no traceback. A corpus of the issue's cases (wrong encodings, deep nesting,
FIFOs, /dev/zero, huge numbers, `schema_version = true`, absurd shapes, truncation of a real store, profile
and predictor at many bytes) plus hypothesis-generated values at random places of real documents, through
the CLI's own `main` in this process; and `bench fuzz` itself on a few cases."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from na_toolkit.bench.fuzz_cases import all_paths, dump_json, dump_toml, mutate_onnx, set_at
from na_toolkit.bench.fuzz_kinds import SEARCH_CONFIG
from na_toolkit.cli.main import main

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "example-cpu.json"
HW_MODEL = REPO / "hwmodels" / "x86-cpu.toml"


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def assert_clean_error(argv: list[str], what: str = "") -> None:
    rc, err = run_cli(argv)
    assert "Traceback" not in err, (what, err)
    assert rc == 2, (what, rc, err[-500:])
    lines = [s for s in err.splitlines() if not s.startswith("na-toolkit: warning:")]
    errors = [s for s in lines if s.startswith("na-toolkit: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], (what, err[-500:])


@pytest.fixture(scope="module")
def real_files(tmp_path_factory) -> dict[str, Path]:
    """Valid files written by the CLI: an architecture JSON and its ONNX model, a saved predictor."""
    tmp = tmp_path_factory.mktemp("fuzz-real")
    assert run_cli(["arch", "export", "resnet-cifar", "--onnx", tmp / "r.onnx"])[0] == 0
    assert run_cli(["arch", "import", tmp / "r.onnx", "--out", tmp / "r.json"])[0] == 0
    data = tmp / "data.jsonl"
    rows = [("simple-cnn", 0.7), ("resnet-cifar", 0.9), ("mobilenetv2-cifar", 0.8), (str(tmp / "r.json"), 0.91)]
    data.write_text("".join(json.dumps({"arch": a, "acc": y}) + "\n" for a, y in rows))
    fit = ["predict", "fit", "--data", data, "--target", "acc", "--predictor", "bayesian-ridge"]
    assert run_cli([*fit, "--out", tmp / "p.json"])[0] == 0
    return {"arch": tmp / "r.json", "onnx": tmp / "r.onnx", "predictor": tmp / "p.json", "data": data}


def _commands(kind: str, path: Path, tmp: Path) -> list[list[str]]:
    return {
        "arch": [["arch", "show", path, "--json"], ["arch", "export", path, "--onnx", tmp / "o.onnx"]],
        "onnx": [["arch", "import", path, "--out", tmp / "o.json"], ["arch", "show", path]],
        "config": [["search", path, "--no-progress", "--output", tmp / "runs"]],
        "hw": [["hw", "show", path, "--json"]],
        "profile": [["profile", "--resume", "--out", path, "--quick", "--no-progress"]],
        "predictor": [["predict", "simple-cnn", "--model", path]],
        "data": [["predict", "fit", "--data", path, "--target", "acc", "--out", tmp / "o.json"]],
    }[kind]


@pytest.mark.parametrize("kind", ["arch", "onnx", "config", "hw", "profile", "predictor", "data"])
def test_unreadable_files_are_one_line_errors(kind, tmp_path):
    latin = tmp_path / "latin"
    latin.write_bytes(b'name = "caf\xe9"\n{"caf\xe9": 1}')
    deep = tmp_path / "deep"
    deep.write_text("x = " + "[" * 100_000 if kind in ("config", "hw") else "[" * 100_000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    utf16 = tmp_path / "utf16"
    utf16.write_bytes('{"a": 1}'.encode("utf-16"))
    nul = tmp_path / "nul"
    nul.write_bytes(b'{"a": "\x00"}\x00')
    for bad in (latin, deep, fifo, empty, utf16, nul, Path("/dev/zero"), tmp_path, tmp_path / "missing"):
        for argv in _commands(kind, bad, tmp_path):
            assert_clean_error(argv, f"{kind} {bad.name}")


ARCH_CASES = {
    "schema_version true": ("schema_version", True),
    "schema_version 1.0": ("schema_version", 1.0),
    "input 1x1e9x1e9": ("input_shape", [1, 10**9, 10**9]),
    "negative input": ("input_shape", [3, -32, 32]),
    "nodes null": ("nodes", None),
}


@pytest.mark.parametrize("case", ARCH_CASES)
def test_invalid_architectures_are_refused(case, real_files, tmp_path):
    doc = json.loads(real_files["arch"].read_text())
    key, value = ARCH_CASES[case]
    doc[key] = value
    path = tmp_path / "a.json"
    path.write_bytes(dump_json(doc))
    for argv in _commands("arch", path, tmp_path):
        assert_clean_error(argv, case)


def test_invalid_onnx_models_are_refused(real_files, tmp_path):
    """The targeted ONNX mutations (kernel_shape [5,5] over 3x3 weights, auto_pad "JUNK", a missing
    initializer, an input of 1e9 x 1e9...): each one refused by both commands."""
    data = real_files["onnx"].read_bytes()
    seen = set()
    for seed in range(40):
        mutant = mutate_onnx(random.Random(seed), data)
        if not mutant.invalid or mutant.special:
            continue
        seen.add(mutant.mutation.split(":")[0])
        path = tmp_path / "m.onnx"
        path.write_bytes(mutant.data)
        for argv in _commands("onnx", path, tmp_path):
            assert_clean_error(argv, mutant.mutation)
    assert {"auto_pad_JUNK", "unknown_op"} <= seen


def test_truncated_profiles_and_predictors_are_refused(real_files, tmp_path):
    """A document cut at any byte (every k-th of the real file) is one error, never a traceback."""
    for kind, source in (("profile", PROFILE), ("predictor", real_files["predictor"])):
        data = source.read_bytes()
        path = tmp_path / f"{kind}.json"
        for cut in range(0, len(data) - 2, max(1, len(data) // 20)):
            path.write_bytes(data[:cut])
            for argv in _commands(kind, path, tmp_path):
                assert_clean_error(argv, f"{kind} cut at {cut}")


PROFILE_CASES = {
    "plan.samples 1e9": (("plan", "samples"), 10**9),
    "plan.samples 2**63": (("plan", "samples"), 2**63),
    "batch_size 0": (("batch_size",), 0),
    "schema_version true": (("schema_version",), True),
    "settings max_runs string": (("settings", "kernel", "max_runs"), "many"),
    "settings warmup_s 1e9": (("settings", "network", "warmup_s"), 1e9),
    "median nan": (("kernels", 0, "measurement", "median_ms"), float("nan")),
}


@pytest.mark.parametrize("case", PROFILE_CASES)
def test_profile_fields_are_checked_before_resuming(case, tmp_path):
    doc = json.loads(PROFILE.read_text())
    doc["kernels"], doc["networks"] = doc["kernels"][:5], doc["networks"][:3]
    path, value = PROFILE_CASES[case]
    set_at(doc, path, value)
    target = tmp_path / "p.json"
    target.write_bytes(dump_json(doc))
    before = target.read_bytes()
    assert_clean_error(_commands("profile", target, tmp_path)[0], case)
    assert target.read_bytes() == before  # a refused resume leaves its input as it was


PREDICTOR_CASES = {
    "schema_version true": (("schema_version",), True),
    "param of a wrong type": (("params", "alpha_1"), "x"),
    "names of dicts": (("state", "features", "names", 0), {}),
    "state list": (("state",), []),
    "predictor NUL": (("predictor",), "a\x00b"),
}


@pytest.mark.parametrize("case", PREDICTOR_CASES)
def test_saved_predictor_fields_are_checked(case, real_files, tmp_path):
    doc = json.loads(real_files["predictor"].read_text())
    path, value = PREDICTOR_CASES[case]
    set_at(doc, path, value)
    target = tmp_path / "p.json"
    target.write_bytes(dump_json(doc))
    assert_clean_error(_commands("predictor", target, tmp_path)[0], case)


def test_a_pickle_blob_is_not_loaded(tmp_path):
    import pickle

    path = tmp_path / "p.json"
    path.write_bytes(pickle.dumps({"a": 1}))
    assert_clean_error(_commands("predictor", path, tmp_path)[0], "pickle")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> Path:
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    tmp = tmp_path_factory.mktemp("fuzz-store")
    (tmp / "c.toml").write_text(SEARCH_CONFIG)
    assert run_cli(["search", tmp / "c.toml", "--no-progress", "--output", tmp / "runs"])[0] == 0
    (run,) = (tmp / "runs").iterdir()
    return run / "store.sqlite"


def _store_commands(run: Path, tmp: Path) -> list[list[str]]:
    return [
        ["report", run, "--json"],
        ["export", run, "--device", "pixel3", "--format", "onnx", "--out", tmp / "o.onnx"],
    ]


def test_truncated_and_damaged_stores_are_refused(real_store, tmp_path):
    data = real_store.read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    page = int.from_bytes(data[16:18], "big")
    for cut in [0, 50, 99, *range(page, len(data) - page, max(page, len(data) // 12))]:
        (run / "store.sqlite").write_bytes(data[:cut])
        for argv in _store_commands(run, tmp_path):
            rc, err = run_cli(argv)  # a cut past the pages a command reads may be accepted
            assert "Traceback" not in err and (rc == 0 or rc == 2 and err.count("na-toolkit: error:") == 1), (cut, err)
            if cut < 100:
                assert rc == 2, (cut, err)
    for change in (
        "UPDATE meta SET value='true' WHERE key='schema_version'",
        "UPDATE runs SET result_json='{not json'",
        "UPDATE runs SET config_json='[' || config_json",
        "DELETE FROM runs",
    ):
        (run / "store.sqlite").write_bytes(data)
        with contextlib.closing(sqlite3.connect(run / "store.sqlite")) as conn:
            conn.execute(change)
            conn.commit()
        for argv in _store_commands(run, tmp_path):
            assert_clean_error(argv, change)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_value_anywhere_in_an_architecture_or_hardware_model(data, real_files, tmp_path_factory):
    """A value of any JSON type at any place of a real architecture JSON or hardware model: exit 0 or one
    clean error, never a traceback (hypothesis, derandomized: the same examples in every run)."""
    tmp = tmp_path_factory.mktemp("hyp")
    kind = data.draw(st.sampled_from(["arch", "hw"]))
    if kind == "arch":
        doc = json.loads(real_files["arch"].read_text())
    else:
        import tomllib

        doc = tomllib.loads(HW_MODEL.read_text())
    path = data.draw(st.sampled_from(all_paths(doc)))
    value = data.draw(JSON_VALUES if kind == "arch" else JSON_VALUES.filter(lambda v: "None" not in repr(v)))
    set_at(doc, path, value)
    target = tmp / ("a.json" if kind == "arch" else "x86-cpu.toml")
    target.write_bytes(dump_json(doc) if kind == "arch" else dump_toml(doc))
    for argv in _commands(kind, target, tmp):
        rc, err = run_cli(argv)
        assert "Traceback" not in err and rc in (0, 2), (path, value, rc, err[-400:])
        if rc == 2:
            assert err.count("na-toolkit: error:") == 1 and err.rstrip().count("\n") == 0, err


def test_bench_fuzz_runs_and_reports_the_issue_keys(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "na_toolkit", "bench", "fuzz", "--cases", "3", "--json"]
        + ["--kinds", "architecture,hardware_model", "--timeout-s", "60"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert {"cases_min_per_kind", "tracebacks", "hangs", "wrong_accepts", "kinds"} <= set(result)
    assert result["cases_min_per_kind"] == 3
    assert set(result["kinds"]) == {"architecture", "hardware_model"}
    for figures in result["kinds"].values():
        outcomes = ("clean_errors", "tracebacks", "hangs", "wrong_accepts", "accepted_valid")
        assert sum(figures[k] for k in outcomes) == figures["cases"] == 3
    assert result["tracebacks"] == result["hangs"] == result["wrong_accepts"] == 0, result


def test_a_profile_record_without_the_profiles_statistic_is_refused(tmp_path):
    doc = json.loads(PROFILE.read_text())
    doc["kernels"], doc["networks"] = doc["kernels"][:5], doc["networks"][:3]
    del doc["networks"][1]["measurement"][f"{doc['runtime']['statistic']}_ms"]
    target = tmp_path / "p.json"
    target.write_bytes(dump_json(doc))
    assert_clean_error(_commands("profile", target, tmp_path)[0], "no min_ms")


def test_a_name_too_long_for_the_os_is_an_unknown_architecture_not_a_crash():
    assert_clean_error(["arch", "show", "x" * 300], "a 300-character name")
