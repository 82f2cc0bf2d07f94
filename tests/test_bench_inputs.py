"""`na-toolkit bench` on bad input and awkward results: refused up front in one line (exit 2) before minutes of
work (moves that never apply, non-positive counts, an unwritable --out/--plot/--dump); a window of dead ends
still ends on time; a few-shot profile benchmarked by `bench latency`; strict JSON (NaN as null)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import default_toolkit
from na_toolkit.bench import ir
from na_toolkit.bench.base import Benchmark
from na_toolkit.bench.latency import clear_kernel_memos
from na_toolkit.cli.main import build_parser
from na_toolkit.errors import ConfigError
from na_toolkit.files import strict_json
from na_toolkit.plugins import load_toolkit

REPO = Path(__file__).resolve().parents[1]
IR_SMALL = ("bench", "ir", "--repeats", "1", "--seconds", "0.1", "--networks", "1")


def _no_constants(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


# ---- 1. moves that never apply ----------------------------------------------------------------------------
def test_moves_that_never_apply_to_the_seed_are_a_one_line_error_not_a_hang(run_cli):
    t0 = time.perf_counter()
    res = run_cli(*IR_SMALL, "--moves", "set_edge_op", "--json", timeout=120)
    line = res.error_line()
    assert line.startswith("na-toolkit: error: no move of set_edge_op applies to resnet-cifar; ")
    assert "--seed-network" in line and res.stdout == ""
    assert time.perf_counter() - t0 < 60


def test_unknown_or_empty_moves_are_refused(run_cli):
    assert "set_nothing" in run_cli(*IR_SMALL, "--moves", "set_nothing").error_line()
    assert run_cli(*IR_SMALL, "--moves", " , ").error_line() == (
        "na-toolkit: error: --moves names no move; give registered moves, comma-separated"
    )


class _NeverApplies:
    name = "never"

    def is_applicable(self, arch: object) -> bool:
        return False


def test_a_window_of_dead_ends_still_ends_on_time():
    seed = default_toolkit().seed("simple-cnn")
    t0 = time.perf_counter()
    count, wall_s, cpu_s = ir._moves_window(seed, [_NeverApplies()], np.random.default_rng(0), 0.05, 20)
    assert count == 0 and 0.05 <= wall_s < 5 and time.perf_counter() - t0 < 5


# ---- 4. non-positive counts ------------------------------------------------------------------------------
def _ir_args(**changes: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ir.configure(parser)
    args = parser.parse_args([])
    for k, v in changes.items():
        setattr(args, k, v)
    return args


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"repeats": 0}, "--repeats must be >= 1, got 0"),
        ({"networks": -3}, "--networks must be >= 1, got -3"),
        ({"walk_length": 0}, "--walk-length must be >= 1, got 0"),
        ({"seconds": 0.0}, "--seconds must be a positive number of seconds, got 0.0"),
        ({"seconds": math.nan}, "--seconds must be a positive number of seconds, got nan"),
        ({"seconds": math.inf}, "--seconds must be a positive number of seconds, got inf"),
    ],
)
def test_non_positive_counts_and_lengths_are_refused(changes, message):
    with pytest.raises(ConfigError) as err:
        ir.check_args(_ir_args(**changes))
    assert str(err.value) == message


def test_repeats_zero_on_the_command_line_is_exit_2_not_a_statistics_error(run_cli):
    res = run_cli("bench", "ir", "--repeats", "0", "--json", timeout=120)
    assert res.error_line() == "na-toolkit: error: --repeats must be >= 1, got 0"
    assert "StatisticsError" not in res.stderr


# ---- 3. output paths checked before the run ---------------------------------------------------------------
def test_an_unwritable_out_is_refused_before_the_benchmark_runs(run_cli, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    missing = tmp_path / "missing" / "ir.json"
    # --repeats 1000 with --seconds 5: the check comes first, or these would take hours
    slow = ("bench", "ir", "--repeats", "1000", "--seconds", "5", "--networks", "1000")
    assert run_cli(*slow, "--out", str(folder), timeout=120).error_line() == (
        f"na-toolkit: error: cannot write --out {str(folder)!r}: it is a folder; give a file path"
    )
    assert run_cli(*slow, "--out", str(missing), timeout=120).error_line() == (
        f"na-toolkit: error: cannot write --out {str(missing)!r}: folder {str(missing.parent)!r} does not exist"
    )
    assert not missing.parent.exists()


def test_out_may_not_be_a_file_the_benchmark_reads_nor_another_output(run_cli, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text("{}")
    line = run_cli("bench", "latency", "--profile", str(profile), "--out", str(profile), timeout=120).error_line()
    assert line == (
        f"na-toolkit: error: cannot write --out {str(profile)!r}: it is the input {str(profile)!r}, "
        "which would be overwritten; give another path"
    )
    assert profile.read_text() == "{}"
    same = tmp_path / "same.json"
    line = run_cli("bench", "latency", "--out", str(same), "--dump", str(same), timeout=120).error_line()
    assert line == f"na-toolkit: error: --out and --dump name the same file {str(same)!r}; give two paths"
    missing = tmp_path / "nowhere" / "dump.json"
    assert "cannot write --dump" in run_cli("bench", "latency", "--dump", str(missing), timeout=120).error_line()


def test_whatif_plot_is_checked_before_the_run(run_cli, tmp_path):
    if "whatif" not in default_toolkit().benchmarks:
        pytest.skip("the NB201 plugin is not installed")
    line = run_cli("bench", "whatif", "--plot", str(tmp_path), timeout=120).error_line()
    assert line == f"na-toolkit: error: cannot write --plot {str(tmp_path)!r}: it is a folder; give a file path"


# ---- 5. strict JSON --------------------------------------------------------------------------------------
def test_strict_json_turns_nan_and_infinities_into_null():
    doc = {"a": math.nan, "b": [1.0, -math.inf, {"c": np.float64("nan")}], "d": (np.float32(2.5), "x"), "e": 3}
    assert strict_json(doc) == {"a": None, "b": [1.0, None, {"c": None}], "d": [2.5, "x"], "e": 3}


def _nan_toolkit() -> object:
    toolkit = load_toolkit(strict=True)
    toolkit.benchmarks.add(
        Benchmark(
            "nanfigures",
            "figures with NaN",
            lambda p: None,
            lambda args, tk: {"spearman": math.nan, "per_seed": [0.5, math.inf], "n": np.float64("nan")},
        )
    )
    return toolkit


def test_bench_prints_and_writes_strict_json_with_nan_as_null(tmp_path, capsys):
    out = tmp_path / "r.json"
    parser = build_parser(_nan_toolkit())  # type: ignore[arg-type]
    args = parser.parse_args(["bench", "nanfigures", "--json", "--out", str(out)])
    assert args._run(args) == 0
    printed = capsys.readouterr().out
    for text in (printed, out.read_text()):
        assert "NaN" not in text and "Infinity" not in text
        doc = json.loads(text, parse_constant=_no_constants)
        assert doc["spearman"] is None and doc["per_seed"] == [0.5, None] and doc["n"] is None
        assert doc["source"]["command"] is None  # the parser was driven without a command line
    args = parser.parse_args(["bench", "nanfigures"])
    assert args._run(args) == 0
    assert capsys.readouterr().out.splitlines() == ["spearman: null", "per_seed: [0.5, null]", "n: null"]


def test_bench_json_says_how_it_was_made(run_cli):
    """The command line and the code's commit are in the result (a committed figure must say what made it)."""
    import subprocess

    import na_toolkit

    res = run_cli(*IR_SMALL, "--json", timeout=120)
    assert res.returncode == 0, res.stderr
    source = res.json()["source"]
    assert source["command"] == "na-toolkit " + " ".join(IR_SMALL) + " --json"
    head = subprocess.run(
        ["git", "-C", str(Path(na_toolkit.__file__).parent), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:  # not a git checkout (an installed wheel): nothing to name
        assert source["commit"] is None
    else:
        assert source["commit"] == head.stdout.strip() and isinstance(source["dirty"], bool)
    # the command line is not a parameter of the benchmark
    assert "params" in res.json() and "_argv" not in res.json()["params"]


def test_a_recorded_command_names_no_scratch_folder_and_repository_files_relative_to_it(tmp_path, monkeypatch):
    """benchmarks/controller-failed-reward.json recorded `--out /tmp/na/s30/strat/controller-before.json`: the
    command line as typed, naming one machine's scratch folder (and a checkout's absolute path for a file of
    the repository). An output outside the repository is its file name, a file of the repository is relative
    to it (as bench architecture names files), from any folder; other arguments are as given."""
    from na_toolkit.cli.bench import _source

    table = tmp_path / "table.csv"
    table.write_text("x\n", encoding="utf-8")
    monkeypatch.chdir(REPO / "benchmarks")
    argv = ["bench", "ir", "--repeats", "1", "--table", str(table), "--out", str(tmp_path / "s30" / "ir.json")]
    args = argparse.Namespace(_argv=argv, out=str(tmp_path / "s30" / "ir.json"), plot="../docs/ir.png")
    assert _source(args)["command"] == f"na-toolkit bench ir --repeats 1 --table {table} --out ir.json"
    argv = ["bench", "ir", f"--out={REPO / 'benchmarks' / 'ir.json'}", "--plot", "../docs/ir.png", "--moves", "scale"]
    args = argparse.Namespace(_argv=argv, out=str(REPO / "benchmarks" / "ir.json"), plot="../docs/ir.png")
    assert _source(args)["command"] == "na-toolkit bench ir --out=benchmarks/ir.json --plot docs/ir.png --moves scale"


# ---- 2. a few-shot profile in bench latency --------------------------------------------------------------
class _Memo:
    def __init__(self) -> None:
        self._memo = {"k": 1.0}


def test_clear_kernel_memos_reaches_a_few_shot_models_priors():
    kernel = _Memo()
    clear_kernel_memos(kernel)
    assert kernel._memo == {}
    priors = [_Memo(), _Memo()]
    fewshot = argparse.Namespace(priors=priors)  # no memo of its own, like FewShotLatencyModel
    clear_kernel_memos(fewshot)
    assert all(p._memo == {} for p in priors)


@pytest.mark.slow  # CLI subprocesses: a few-shot profile (6 networks), then 10 held-out networks measured
def test_bench_latency_takes_a_few_shot_profile(run_cli, tmp_path):
    doc = json.loads((REPO / "profiles" / "example-cpu.json").read_text())
    doc["kernels"], doc["networks"] = doc["kernels"][:150], doc["networks"][:30]
    prior = tmp_path / "xeon.json"
    prior.write_text(json.dumps(doc))
    profile = tmp_path / "fewshot.json"
    small = ("--seed-net", "simple-cnn", "--max-moves", "3", "--pool", "30", "--quick", "--no-progress")
    res = run_cli("profile", "--fewshot", "6", "--prior", str(prior), "--out", str(profile), *small, "--json")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "latency.json"
    res = run_cli(
        "bench", "latency", "--profile", str(profile), "--heldout", "10", "--repeats", "1", "--max-moves", "2",
        "--quick", "--json", "--out", str(out), "--dump", str(tmp_path / "dump.json"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    dump = json.loads((tmp_path / "dump.json").read_text(), parse_constant=_no_constants)
    assert len(dump) == 10 and all(d["truth_ms"] > 0 and len(d["passes"]) == 1 for d in dump)
    doc = res.json()
    assert doc == json.loads(out.read_text())
    assert doc["profile"]["kernels"] == 0 and doc["profile"]["networks"] == 6
    assert doc["heldout"]["networks"] == 10 and doc["learned"]["predictions_per_s_cold"] > 0
    assert doc["params"]["profile"] == str(profile)
    # no --heldout-seed: the held-out networks are variants of the seed the profile was built from
    assert doc["params"]["heldout_seeds"] == doc["heldout"]["profile_seeds"] == ["simple-cnn"]
    assert doc["heldout"]["seeds"]["simple-cnn"]["networks"] == 10 and doc["heldout"]["out_of_family"] == []


def test_bench_latency_refuses_a_profile_of_another_runtime_or_device_kind(run_cli):
    # the shipped H200 profile was measured by torch on a GPU: its figures cannot be set against ONNX Runtime
    # measurements on this CPU, so nothing is built or measured
    h200 = REPO / "profiles" / "h200-torch-b1.json"
    line = run_cli("bench", "latency", "--profile", str(h200), "--heldout", "10", timeout=120).error_line()
    assert line == (
        f"na-toolkit: error: --profile {str(h200)!r} cannot be compared with this benchmark's measurements (ONNX "
        "Runtime, batch size 1, on --device 'cpu'): it was measured with 'torch', not onnxruntime; it measured "
        "'cuda:0', and --device is 'cpu'. Give a profile built by `na-toolkit profile --device cpu` (onnxruntime, "
        "batch size 1), or leave --profile out to build one"
    )


def test_a_copy_installed_inside_another_projects_checkout_names_no_commit(tmp_path):
    # a virtual environment inside a user's repository: that repository's HEAD is not the toolkit's commit
    import shutil
    import subprocess

    import na_toolkit

    project = tmp_path / "project"
    site = project / ".venv" / "site-packages"
    shutil.copytree(Path(na_toolkit.__file__).parent, site / "na_toolkit", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".gitignore").write_text(".venv/\n")
    for command in (
        ["init", "-q"],
        ["add", ".gitignore"],
        ["-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", "-C", str(project), *command], check=True, capture_output=True)
    code = "from na_toolkit.machine import source_revision; print(source_revision())"
    done = subprocess.run(
        [sys.executable, "-P", "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
    # a copy installed where git cannot tell (benchmarks/gpu_latency.sh on a lent GPU machine): told by the
    # environment, in the form COMMIT or COMMIT+dirty; another form is ignored, with a warning naming the form
    for told, printed in (
        ("8cdab81+dirty", "{'commit': '8cdab81', 'dirty': True}"),
        ("8cdab81", "{'commit': '8cdab81', 'dirty': False}"),
        ("main", "None"),
    ):
        done = subprocess.run(
            [sys.executable, "-P", "-c", code],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(site), "NA_TOOLKIT_SOURCE_REVISION": told},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and done.stdout.strip() == printed, (told, done.stdout, done.stderr)
        assert ("give COMMIT or COMMIT+dirty" in done.stderr) == (told == "main")


@pytest.mark.parametrize(
    "argv",
    [  # before: tracebacks (ValueError, StatisticsError, IndexError) or a wrong figure with exit 0, after work
        ("train-time", "--max-moves", "0"),
        ("latency", "--quick", "--max-moves", "0"),
        ("faults", "--evaluations", "0"),
        ("faults", "--workers", "0"),
        ("inheritance", "--seeds", "0"),
        ("inheritance-recovery", "--children", "0"),
        ("executor", "--scale-only", "--repeats", "0"),
        ("executor", "--scale-only", "--refit-sizes", "0"),
        ("whatif", "--cells", "-5"),
    ],
    ids=" ".join,
)
def test_a_count_out_of_range_is_a_usage_error_before_any_work(argv, run_cli):
    if argv[0] == "whatif":
        pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    res = run_cli("bench", *argv, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert f"argument {argv[-2]}: must be >= " in res.stderr and f"got {argv[-1]}" in res.stderr


def test_nb201_rate_batch_and_a_predictor_set_that_scores_nothing_are_refused(run_cli):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    # before: --rate-batch 8000 ran a third repeat on no cells and put its 0/s into the median (exit 0)
    for batch in ("0", "8000"):
        argv = ("bench", "nb201-search", "--seeds", "1", "--evaluations", "2", "--rate-batch", batch)
        line = run_cli(*argv).error_line()
        assert line.startswith("na-toolkit: error: --rate-batch must be in [1, 5175] (3 repeats of new cells), got")
    line = run_cli(
        "bench", "predictor", "--predictors", "neural", "--neural-seeds", "0", "--train", "10", "--test", "20",
        "--seeds", "1",
    ).error_line()  # fmt: skip
    assert "no predictor was scored: --predictors neural with --neural-seeds 0 leaves only the baselines" in line
