"""Each device figure of a run says whether it was measured or estimated: ONNX Runtime measures the latency on
a CPU, while its peak memory is the analytic figure (weights + peak live activations), an estimate. The run's
provenance records it per figure; summary.json, report.md, report.html and the Pareto table label it."""

import html
import json
import re
import warnings
from pathlib import Path

import pytest

from na_toolkit.plugins import load_toolkit
from na_toolkit.search.loop import run_search
from na_toolkit.search.outputs import outcome_lines, pareto_table
from na_toolkit.search.plots import plot_pareto
from na_toolkit.timemodels import get_time_model

TK = load_toolkit()
FAST = {"warmup_runs": 2, "warmup_s": 0.01, "min_runs": 5, "max_runs": 8, "max_time_s": 0.3}


def search_doc(tmp_path, device, evaluations=2):
    """A search of simple-cnn with the synthetic evaluator on one device `cpu` (its table `device`)."""
    return {
        "name": "sources",
        "seed_network": "simple-cnn",
        "evaluations": evaluations,
        "output": str(tmp_path),
        "search": {"per_round": 1, "moves": ["scale"]},
        "strategy": {"name": "random"},
        "evaluator": {"name": "synthetic"},
        "devices": {"cpu": device},
    }


def _doc(tmp_path, budgets):
    return search_doc(
        tmp_path,
        {
            "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
            "measure": {"name": "onnxruntime", "options": {"settings": FAST}},
            "budgets": budgets,
        },
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sources")
    result = run_search(_doc(tmp, {"latency_ms": 50.0, "peak_memory_bytes": 64e6}), toolkit=TK, progress=False)
    return result, json.loads((result.run_dir / "summary.json").read_text())


def test_onnxruntime_on_a_cpu_measures_latency_and_estimates_peak_memory():
    model = get_time_model("onnxruntime", TK, device="cpu")
    assert model.figure_source("latency_ms").kind == "measured"
    memory = model.figure_source("peak_memory_bytes")
    assert memory.kind == "estimated" and "analytic" in memory.how
    assert model.figure_source("energy_mj") is None  # no NVML counter on a CPU
    assert get_time_model("roofline", TK, device="x86-cpu").figure_source("latency_ms").kind == "estimated"


def test_summary_json_and_provenance_say_which_figure_is_measured(run):
    _, summary = run
    sources = summary["metric_sources"]
    assert sources["latency_ms@cpu"]["kind"] == "measured" and sources["latency_ms@cpu"]["statistic"] == "median"
    assert "statistic" not in sources["peak_memory_bytes@cpu"]  # an analytic figure has none
    assert sources["peak_memory_bytes@cpu"]["kind"] == "estimated"
    assert sources["peak_memory_bytes@cpu"]["by"] == "measure onnxruntime"
    figures = summary["provenance"]["events"][0]["components"]["devices"]["cpu"]["figures"]
    assert figures["peak_memory_bytes"]["kind"] == "estimated" and figures["latency_ms"]["kind"] == "measured"


def test_the_pareto_plot_labels_the_latency_axis_with_its_source(run, tmp_path):
    """pareto.png's latency axis read "latency (ms) on cpu", where the table says measured or estimated and
    which statistic; its label now says it too (drawn here as SVG, which keeps each text as a comment)."""
    _, summary = run
    plot_pareto(summary, tmp_path / "pareto.svg")
    svg = (tmp_path / "pareto.svg").read_text()
    assert "<!-- latency on cpu (ms, measured median) -->" in svg and "<!-- model_size (bytes) -->" in svg


def test_the_pareto_table_report_md_and_html_label_each_figure(run):
    result, summary = run
    header = pareto_table(summary).splitlines()[0]
    assert "latency cpu (ms, measured median)" in header and "peak memory cpu (estimated)" in header
    best = outcome_lines(summary)[0]
    assert "ms (measured median)" in best and ("MB (estimated)" in best or "kB (estimated)" in best)
    report = (result.run_dir / "report.md").read_text()
    assert "## Where the figures come from (measured or estimated)" in report
    assert "- peak_memory_bytes@cpu: estimated by the device's measure onnxruntime (analytic" in report
    assert "| latency cpu (ms, measured median) |" in report
    assert "- latency_ms@cpu: measured by the device's measure onnxruntime (onnxruntime on cpu, median of the" in report
    page = html.unescape((result.run_dir / "report.html").read_text())
    assert "peak_memory_bytes@cpu: estimated by the device's measure onnxruntime (analytic" in page
    assert "accuracy vs latency_ms@cpu (measured (onnxruntime on cpu, median of the timed runs))" in page


def test_a_device_memory_capacity_that_stops_the_search_is_named_with_how_to_change_it(tmp_path):
    """A roofline device without a measure gets `peak_memory_bytes <= capacity` as a hard budget of weight 0;
    when it is what drops every proposal (and leaves no feasible network) the stop reason and the
    infeasibility say it is the device's capacity, from which hardware model, and how to change it."""
    text = (Path(__file__).parents[1] / "hwmodels" / "x86-cpu.toml").read_text()
    text = text.replace('name = "x86-cpu"', 'name = "tiny-cpu"')
    text = re.sub(r"\nmemory_capacity_bytes = [0-9_]+", "\nmemory_capacity_bytes = 10_000", text)
    (tmp_path / "tiny-cpu.toml").write_text(text)
    device = {"time_model": {"name": "roofline", "options": {"device": str(tmp_path / "tiny-cpu.toml")}}}
    doc = {**search_doc(tmp_path, device, evaluations=4), "search": {"per_round": 1, "max_stalled_rounds": 2}}
    doc["seed_network"] = "resnet-cifar"  # its 3x32x32 input alone (12 kB) does not fit in 10 kB
    result = run_search(doc, toolkit=TK, progress=False, outputs=False)
    reason = result.stop_reason
    assert reason.startswith("the strategy proposed no new candidate in 2 rounds in a row"), reason
    assert "peak_memory_bytes@cpu <= 10000 (the memory capacity of hardware model tiny-cpu)" in reason
    assert "memory_capacity_bytes" in reason and "give the device a `measure`" in reason
    seed = [w for w in result.warnings if w.startswith("the seed exceeds budget peak_memory_bytes@cpu")]
    assert len(seed) == 1 and "tiny-cpu" in seed[0] and "memory_capacity_bytes" in seed[0]
    infeasible = result.infeasible["cpu"]
    assert "the memory capacity of hardware model tiny-cpu" in infeasible and "memory_capacity_bytes" in infeasible


def test_onnxruntime_falling_back_to_the_cpu_says_so_and_measures_no_energy():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = get_time_model("onnxruntime", TK, device="cuda:0", allow_fallback=True)
    if model.on_gpu:  # a machine with ONNX Runtime's CUDA provider: no fallback, and NVML's energy
        assert model.figure_source("latency_ms").how == "onnxruntime on cuda:0, median of the timed runs"
        assert model.figure_source("energy_mj").kind == "measured"
        return
    assert any("measured on the CPU instead" in str(w.message) for w in caught)
    how = "onnxruntime on the CPU, not cuda:0 (allow_fallback), median of the timed runs"
    assert model.figure_source("latency_ms").how == how
    assert model.figure_source("energy_mj") is None  # the CPU provider reads no NVML counter
    assert model.figure_source("peak_memory_bytes").kind == "estimated"


def test_a_measured_latency_names_its_statistic_and_an_older_summary_renders_without_one(run):
    """A latency measured as the p10 (or min) of the timed runs was labelled "measured" as a median was; the
    source names the statistic, and a run recorded before it did renders as it was recorded."""
    p10 = get_time_model("torch", TK, device="cpu", statistic="p10").figure_source("latency_ms")
    assert p10.to_json() == {"kind": "measured", "how": "torch on cpu, p10 of the timed runs", "statistic": "p10"}
    _, summary = run
    old = json.loads(json.dumps(summary))
    source = old["metric_sources"]["latency_ms@cpu"]
    del source["statistic"]
    source["how"] = "onnxruntime on cpu"
    assert "latency cpu (ms, measured)" in pareto_table(old).splitlines()[0]
    assert "ms (measured)" in outcome_lines(old)[0]


def test_each_measurement_keeps_the_machines_load_and_a_busy_one_is_a_warning(run):
    """A measured latency was 1.8x another run's of the same network on a loaded machine, and nothing said the
    machine was busy: each measurement now keeps the 1-minute load average and the cores of the machine it ran
    on, and a run warns of those taken while the load exceeded the cores."""
    import os
    import types

    from na_toolkit.search.scorer import Scorer
    from na_toolkit.store import SQLiteRunStore

    result, _ = run
    with SQLiteRunStore.open(result.run_dir) as store:
        doc = store.measurement(result.seed_hash, "cpu", "onnxruntime", "measure:batch=1")
    assert doc is not None and doc["cores"] == os.cpu_count() and doc["load_average_1min"] >= 0
    loads = {"cpu": [(0.5, 2), (3.5, 2), (2.2, 2), (None, None)], "pi": [(1.0, 4)]}
    (said,) = Scorer.load_warnings(types.SimpleNamespace(_loads=loads))
    assert said.startswith("device cpu: 2 of 4 measurements ran while the machine's 1-minute load average exceeded")
    assert "(up to 3.5 on 2)" in said
