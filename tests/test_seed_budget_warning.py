"""The start's warning that the seed breaks a budget is an estimate's: when the seed's measurement meets the
budget, the run's warnings say that (and how far the estimate was off) instead of "the search must shrink
it", which the run's own figures contradict."""

from __future__ import annotations

import re
from pathlib import Path

from na_toolkit.search.loop import run_search
from test_figure_sources import TK, _doc


def _slow_launch_cpu(tmp_path: Path) -> str:
    """x86-cpu with a 1 ms launch overhead: the roofline estimates simple-cnn at several ms, far over what
    ONNX Runtime measures."""
    text = (Path(__file__).parents[1] / "hwmodels" / "x86-cpu.toml").read_text()
    text = text.replace('name = "x86-cpu"', 'name = "slow-launch-cpu"')
    text = re.sub(r"\nlaunch_overhead_s = [0-9.e-]+", "\nlaunch_overhead_s = 1e-3", text)
    (tmp_path / "slow-launch-cpu.toml").write_text(text)
    return str(tmp_path / "slow-launch-cpu.toml")


def test_a_seed_estimated_over_budget_but_measured_within_it_says_so(tmp_path):
    # before: "the seed exceeds budget latency_ms@cpu (... estimated before anything is measured): the search
    # must shrink it" stayed in the summary and report.md although the seed measured far inside the budget
    doc = _doc(tmp_path, {"latency_ms": 1.0})
    doc["devices"]["cpu"]["time_model"]["options"]["device"] = _slow_launch_cpu(tmp_path)
    doc["evaluations"] = 1
    result = run_search(doc, toolkit=TK, progress=False, outputs=False)
    measured = result.evaluated[0].score.metrics["latency_ms@cpu"]
    assert measured < 1.0  # ONNX Runtime on simple-cnn: well under a millisecond
    seed = [w for w in result.warnings if "the seed" in w]
    assert len(seed) == 1 and "must shrink it" not in seed[0]
    assert seed[0].startswith("the seed's estimate broke budget latency_ms@cpu (")
    assert f"but it measures {measured:.6g}, within the budget" in seed[0] and "x the measurement" in seed[0]


def test_a_seed_the_measurement_confirms_over_budget_keeps_the_warning(tmp_path):
    doc = _doc(tmp_path, {"latency_ms": 1e-6})  # nothing runs in a nanosecond
    doc["evaluations"] = 1
    result = run_search(doc, toolkit=TK, progress=False, outputs=False)
    seed = [w for w in result.warnings if "the seed" in w]
    assert len(seed) == 1 and seed[0].startswith("the seed exceeds budget latency_ms@cpu (")
    assert seed[0].endswith("estimated before anything is measured): the search must shrink it")


def test_a_seed_measured_over_budget_by_a_measuring_time_model_says_measured(tmp_path):
    # a device whose time model measures (a plugin's, or onnxruntime) scored the seed by running it, yet the
    # warning said "estimated before anything is measured"
    doc = _doc(tmp_path, {"latency_ms": 1e-6})
    doc["devices"]["cpu"]["time_model"] = doc["devices"]["cpu"].pop("measure")
    doc["evaluations"] = 1
    result = run_search(doc, toolkit=TK, progress=False, outputs=False)
    seed = [w for w in result.warnings if "the seed" in w]
    assert len(seed) == 1 and seed[0].startswith("the seed exceeds budget latency_ms@cpu (")
    assert seed[0].endswith("measured by time model onnxruntime): the search must shrink it")
