"""A search tells the warnings its measurements came with (search/measure_warnings.py): a real search whose
ONNX Runtime measurement cannot settle (3 timed runs, fewer than the stability check needs)."""

from __future__ import annotations

from na_toolkit.search import run_search
from na_toolkit.store import SQLiteRunStore


def test_a_measurement_that_did_not_settle_is_in_the_run_warnings(tmp_path):
    settings = {"warmup_runs": 1, "warmup_s": 0.0, "min_runs": 3, "max_runs": 3}
    doc = {
        "name": "unsettled",
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 1,
        "output": str(tmp_path),
        "evaluator": {"name": "torch", "options": {"epochs": 1, "threads": 1}},
        "predictors": {"accuracy": {"name": "bayesian-ridge"}},
        "devices": {
            "cpu": {
                "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                "measure": {"name": "onnxruntime", "options": {"settings": settings}},
                "budgets": {"latency_ms": 1000.0},
            }
        },
    }
    res = run_search(doc, progress=False, outputs=True)
    (seed,) = res.evaluated
    with SQLiteRunStore.open(res.run_dir) as store:
        measured = store.measurement(seed.hash, "cpu", "onnxruntime", "measure:batch=1")
    assert measured["details"]["measurement"]["stable"] is False
    (stored,) = [w for w in measured["warnings"] if "not stable" in w]
    (told,) = [w for w in res.warnings if "came with warnings" in w]
    assert told.startswith("device cpu: 1 of 1 measurements") and f"network {seed.hash}: {stored}" in told
    assert told in (res.run_dir / "summary.json").read_text() and told in (res.run_dir / "report.md").read_text()
