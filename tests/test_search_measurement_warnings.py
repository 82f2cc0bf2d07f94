"""A search tells the warnings its measurements came with (search/measure_warnings.py): a real search whose
ONNX Runtime measurement cannot settle (3 timed runs, fewer than the stability check needs)."""

from __future__ import annotations

from na_toolkit.search import run_search
from na_toolkit.store import SQLiteRunStore


def _search_doc(tmp_path, name, measure_options, **devices):
    """A one-evaluation digits search whose device `cpu` is measured by ONNX Runtime (`measure_options`) under
    a 1 s latency budget; `devices` adds others."""
    return {
        "name": name,
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 1,
        "output": str(tmp_path),
        "evaluator": {"name": "torch", "options": {"epochs": 1, "threads": 1}},
        "predictors": {"accuracy": {"name": "bayesian-ridge"}},
        "devices": {
            "cpu": {
                "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                "measure": {"name": "onnxruntime", "options": measure_options},
                "budgets": {"latency_ms": 1000.0},
            },
            **devices,
        },
    }


def test_a_measurement_that_did_not_settle_is_in_the_run_warnings(tmp_path):
    settings = {"warmup_runs": 1, "warmup_s": 0.0, "min_runs": 3, "max_runs": 3}
    doc = _search_doc(tmp_path, "unsettled", {"settings": settings})
    res = run_search(doc, progress=False, outputs=True)
    (seed,) = res.evaluated
    with SQLiteRunStore.open(res.run_dir) as store:
        measured = store.measurement(seed.hash, "cpu", "onnxruntime", "measure:batch=1")
    assert measured["details"]["measurement"]["stable"] is False
    (stored,) = [w for w in measured["warnings"] if "not stable" in w]
    (told,) = [w for w in res.warnings if "came with warnings" in w]
    assert told.startswith("device cpu: 1 of 1 measurements") and f"network {seed.hash}: {stored}" in told
    assert told in (res.run_dir / "summary.json").read_text() and told in (res.run_dir / "report.md").read_text()


def test_a_budget_between_the_minimum_and_the_p10_of_a_min_statistic_is_within_the_noise(tmp_path):
    from conftest import default_toolkit
    from na_toolkit.search.components import build_components
    from na_toolkit.search.config import load_config
    from na_toolkit.search.scorer import Scorer
    from na_toolkit.search.summary import Counters

    settings = {"warmup_runs": 3, "warmup_s": 0.01, "min_runs": 8, "max_runs": 12, "max_time_s": 0.5}
    doc = _search_doc(tmp_path, "noise-min", {"settings": settings, "statistic": "min"})
    res = run_search(doc, progress=False, outputs=False)
    (seed,) = res.evaluated
    with SQLiteRunStore.open(res.run_dir) as store:
        measured = store.measurement(seed.hash, "cpu", "onnxruntime", "measure:batch=1")
    low, p10, p90 = measured["latency_ms"], measured["latency_p10_ms"], measured["latency_p90_ms"]
    assert low == measured["details"]["measurement"]["min_ms"] and low < p10
    # the network meets this budget by its minimum, while nine in ten of its timed runs were slower
    doc["devices"]["cpu"]["budgets"] = {"latency_ms": (low + p10) / 2}
    components = build_components(load_config(doc), default_toolkit())
    try:
        scorer = Scorer(components, Counters())
        scorer._beside[("cpu", seed.hash)] = {"latency_p10_ms": p10, "latency_p90_ms": p90}
        scorer._check_noise(seed.candidate.arch, dict(seed.score.metrics))
    finally:
        components.close()
    (warning,) = scorer.noise_warnings
    assert "within the measurement's noise" in warning


def test_each_measured_latency_has_its_spread_and_load_beside_it_in_the_run_outputs(tmp_path):
    """Issue 13: "report the spread and the load beside each measured figure": evaluations.csv/.jsonl and
    result.rows() carry latency_p10_ms@DEV, latency_p90_ms@DEV and load_average_1min@DEV next to the
    measured latency_ms@DEV, as the run store measured them; an estimated device has none of them."""
    import csv
    import json

    settings = {"warmup_runs": 2, "warmup_s": 0.0, "min_runs": 10, "max_runs": 20, "max_time_s": 0.5}
    pi = {"time_model": {"name": "roofline", "options": {"device": "raspberry-pi-4"}}}
    doc = _search_doc(tmp_path, "beside", {"settings": settings}, pi=pi)
    res = run_search(doc, progress=False, outputs=True)
    (seed,) = res.evaluated
    with SQLiteRunStore.open(res.run_dir) as store:
        measured = store.measurement(seed.hash, "cpu", "onnxruntime", "measure:batch=1")
    m = seed.score.metrics
    assert m["latency_p10_ms@cpu"] == measured["latency_p10_ms"] <= m["latency_ms@cpu"]
    assert m["latency_ms@cpu"] <= m["latency_p90_ms@cpu"] == measured["latency_p90_ms"]
    assert m["load_average_1min@cpu"] == measured["load_average_1min"] >= 0
    assert not any(k.endswith("@pi") and ("p10" in k or "p90" in k or "load" in k) for k in m)
    (line,) = (res.run_dir / "evaluations.jsonl").read_text().splitlines()
    (row,) = list(csv.DictReader((res.run_dir / "evaluations.csv").open()))
    for key in ("latency_p10_ms@cpu", "latency_p90_ms@cpu", "load_average_1min@cpu"):
        assert json.loads(line)[key] == m[key] == float(row[key]) == res.rows()[0][key]
    assert json.loads(line)["latency_ms@cpu_source"].startswith("measured")
