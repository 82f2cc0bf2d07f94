"""The NB201 search benchmark: every strategy (and TPE) drives the same loop on the table, respects a hard
latency budget without paying for infeasible cells, and is credited with the test accuracy of its best
feasible cell by valid accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

from conftest import default_toolkit
from na_toolkit.search.loop import run_search
from na_toolkit_nb201.bench import nb201_search
from na_toolkit_nb201.space import nb201_cell_of
from na_toolkit_nb201.table import load_table

DEVICE = "lat_pixel3"
#: small enough for a test: the controller explores less per round than in the benchmark
NA_TEST_OPTIONS = {"episodes": 8, "updates": 2}


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    nb201_search.configure(parser)
    args = parser.parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


@pytest.fixture(scope="module")
def table():
    return load_table()


@pytest.fixture(scope="module")
def budget_ms(table):
    return float(np.quantile(table.column(DEVICE), 0.25))


def _feasible(table, budget_ms):
    lat = table.column(DEVICE)
    return lambda arch: bool(lat[table.row_of(nb201_cell_of(arch))] <= budget_ms)


@pytest.mark.parametrize("strategy", ["neural-architect", "random", "evolution", "tpe"])
def test_each_strategy_searches_the_table_within_the_latency_budget(strategy, table, budget_ms, tmp_path, monkeypatch):
    monkeypatch.setitem(nb201_search.STRATEGY_OPTIONS, "neural-architect", NA_TEST_OPTIONS)
    toolkit = nb201_search._bench_toolkit(default_toolkit(), [strategy], _feasible(table, budget_ms))
    doc = nb201_search._config(_args(evaluations=15, per_round=5), strategy, 0, tmp_path, DEVICE, budget_ms)
    result = run_search(doc, toolkit=toolkit, progress=False, outputs=False)
    assert result.counters.evaluations == 15 and len({e.hash for e in result.evaluated}) == 15
    lat, valid, test = table.column(DEVICE), table.column("c10_valid_acc_200ep"), table.column("c10_test_acc_200ep")
    rows = [table.row_of(nb201_cell_of(e.candidate.arch)) for e in result.evaluated]
    # infeasible cells are never paid for: every evaluation meets the hard budget
    assert all(lat[r] <= budget_ms for r in rows)
    assert all(e.feasible_for[DEVICE] for e in result.evaluated)
    # the strategy saw valid accuracy; the best feasible by valid is credited with its test accuracy
    best = nb201_search._best_feasible(result, DEVICE)
    r_best = table.row_of(nb201_cell_of(best.candidate.arch))
    assert valid[r_best] == pytest.approx(max(valid[r] for r in rows))
    assert 100 * best.score.metrics["test_accuracy"] == pytest.approx(test[r_best])
    assert 100 * best.score.metrics["accuracy"] == pytest.approx(valid[r_best])
    if strategy == "neural-architect":
        # the controller screened many more proposals with the predictor than it paid for
        assert result.counters.candidates_scored > 5 * result.counters.evaluations


def test_bench_run_reports_every_strategy_and_the_reference(tmp_path, monkeypatch):
    monkeypatch.setitem(nb201_search.STRATEGY_OPTIONS, "neural-architect", NA_TEST_OPTIONS)
    args = _args(seeds=1, evaluations=10, per_round=5, device="pixel3", strategies="random,tpe", rate_batch=20)
    out = nb201_search.run(args, default_toolkit())
    assert set(out["test_accuracy"]) == {"random", "tpe"}
    for name in ("random", "tpe"):
        s = out["test_accuracy"][name]
        assert s["n"] == 1 and 10.0 < s["mean"] <= out["reference"]["feasible_optimum_test"] + 1e-9
        assert out["strategies"][name]["evaluations_mean"] == 10
    assert out["reference"]["budget_ms"] == pytest.approx(
        float(np.quantile(load_table().column(DEVICE), 0.25)), rel=1e-5
    )
    assert out["candidates_per_s"] > 0 and out["target"]["neural-architect_test_accuracy"] == 91.70


def test_unknown_device_or_strategy_is_a_clear_error():
    from na_toolkit.errors import NAToolkitError

    with pytest.raises(NAToolkitError, match="no latency column 'lat_toaster'"):
        nb201_search.run(_args(device="toaster", seeds=1, evaluations=2), default_toolkit())
    with pytest.raises(NAToolkitError, match="unknown strategy 'annealing'"):
        nb201_search.run(_args(strategies="annealing", seeds=1, evaluations=2), default_toolkit())


def test_neural_architect_is_registered_by_the_builtin_plugin():
    from na_toolkit.search.neural_architect import NeuralArchitectStrategy

    assert default_toolkit().strategies.get("neural-architect") is NeuralArchitectStrategy
    assert Path(nb201_search.__file__).name == "nb201_search.py"


def test_the_nb201_benchmarks_are_the_plugins():
    """The plugin boundary holds both ways: the NB201 benchmarks are registered by the NB201 plugin, and
    the core registers only its own."""
    tk = default_toolkit()
    for name in ("nb201-search", "predictor", "fewshot-latency"):
        assert tk.benchmarks.plugin_of(name).startswith("nb201 ")
        assert tk.benchmarks.get(name).run.__module__.startswith("na_toolkit_nb201.bench.")
    assert tk.benchmarks.get("nb201-search") is nb201_search.BENCHMARK
    for name in ("ir", "latency", "architecture"):
        assert tk.benchmarks.plugin_of(name).startswith("na_toolkit.builtin.benchmarks")


def test_bench_help_lists_every_registered_benchmark(run_cli):
    # a benchmark's help line is not an argparse format: "±10%" (fewshot-latency's) must print as it is
    res = run_cli("bench", "--help")
    assert res.returncode == 0, res.stderr
    assert "±10%" in res.stdout
    for name in ("ir", "latency", "architecture", "nb201-search", "predictor", "fewshot-latency"):
        assert name in res.stdout
    res = run_cli("bench", "ir", "--help")
    assert res.returncode == 0 and "--walk-length" in res.stdout, res.stderr
    line = run_cli("bench", "nb201-search", "--seeds", "1", "--strategies", "annealing").error_line()
    assert "unknown strategy 'annealing'" in line
