"""The rows of a run's evaluated networks, as `result.rows()`, `open_run(RUN).rows()`, evaluations.jsonl and
evaluations.csv give them: the same rows, each device figure with its source (budgeted or not), and the CSV
with each row's feasibility per device and its violations.

One real search on three devices, with the synthetic evaluator: `cpu` measured by ONNX Runtime (its peak
memory an analytic estimate, with no budget on it), `pi4` a roofline (energy with no budget) whose latency
budget no network meets, `lrn` a learned model of a part of the example-cpu profile (peak memory but no
energy)."""

import csv
import json

import pytest

from na_toolkit.cli.main import main
from na_toolkit.plugins import load_toolkit
from na_toolkit.search import open_run, run_search
from na_toolkit.search.evaluations_file import SOURCE_SUFFIX
from na_toolkit.search.measure_warnings import BESIDE_MEASURED
from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path
from test_figure_sources import FAST, search_doc

TK = load_toolkit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rows")
    profile = DeviceProfile.load(resolve_profile_path("example-cpu", TK.hardware)).to_json()
    profile["kernels"], profile["networks"] = profile["kernels"][:80], profile["networks"][:12]  # a fast fit
    (tmp / "small-cpu.json").write_text(json.dumps(profile))
    cpu = {
        "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
        "measure": {"name": "onnxruntime", "options": {"settings": FAST}},
        "budgets": {"latency_ms": 50.0},
    }
    doc = search_doc(tmp, cpu, evaluations=3)
    doc["devices"]["pi4"] = {
        "time_model": {"name": "roofline", "options": {"device": "raspberry-pi-4"}},
        "budgets": {"latency_ms": 1e-6},  # below any network's: no row is feasible on pi4
    }
    learned = {"device": str(tmp / "small-cpu.json"), "boost": False, "check_device": False}
    doc["devices"]["lrn"] = {"device": "cpu", "time_model": {"name": "learned", "options": learned}}
    result = run_search(doc, toolkit=TK, progress=False)
    jsonl = [json.loads(line) for line in (result.run_dir / "evaluations.jsonl").read_text().splitlines()]
    return result, jsonl


def test_rows_are_the_rows_of_evaluations_jsonl_live_and_opened(run):
    """rows() lacked the `<figure>_source` keys the file's rows have, though the docs say it gives them."""
    result, jsonl = run
    assert len(jsonl) == 3
    assert result.rows() == jsonl
    assert open_run(result.run_dir, toolkit=TK).rows() == jsonl
    assert open_run(result.run_dir, unfinished=True, toolkit=TK).rows() == jsonl  # a finished run: the same
    assert {r["latency_ms@cpu_source"] for r in result.rows()} == {"measured median by measure onnxruntime"}


def _beside(key):
    """A column beside a measured latency (its spread, the load it was measured under), not a figure."""
    return key.partition("@")[0] in BESIDE_MEASURED


def test_every_device_figure_of_a_row_names_its_source_budgeted_or_not(run):
    """Peak memory (and a roofline's energy) is in every row though no budget limits it; it had no source, so
    ONNX Runtime's analytic peak memory could be read as a measurement."""
    result, jsonl = run
    for row in jsonl:
        figures = [k for k in row if "@" in k and not k.endswith(SOURCE_SUFFIX) and not _beside(k)]
        assert {"peak_memory_bytes@cpu", "energy_mj@pi4", "peak_memory_bytes@lrn"} <= set(figures)
        assert [f for f in figures if not row.get(f + SOURCE_SUFFIX)] == []
        assert row["peak_memory_bytes@cpu_source"] == "estimated by measure onnxruntime"
        assert row["energy_mj@pi4_source"] == "estimated by time_model roofline"
        assert row["peak_memory_bytes@lrn_source"] == "estimated by time_model learned"
        assert "energy_mj@lrn" not in row  # a learned model gives none
    summary = json.loads((result.run_dir / "summary.json").read_text())
    sources = summary["metric_sources"]
    figures = {k for row in jsonl for k in row if "@" in k and not k.endswith(SOURCE_SUFFIX) and not _beside(k)}
    assert set(sources) == figures  # a source for each figure the rows hold, and for none they lack
    memory = sources["peak_memory_bytes@cpu"]
    assert memory["kind"] == "estimated" and "analytic" in memory["how"]
    # what scored the candidates of a measured device: only what changes a reward, its budgeted latency
    assert set(summary["scoring_sources"]) == {"latency_ms@cpu"}
    report = (result.run_dir / "report.md").read_text()
    assert "- peak_memory_bytes@cpu: estimated by the device's measure onnxruntime (analytic" in report


def test_the_csv_gives_feasibility_per_device_and_violations_and_predict_fit_reads_it(run, tmp_path, capsys):
    result, jsonl = run
    with open(result.run_dir / "evaluations.csv", newline="") as f:
        header, *cells = list(csv.reader(f))
    assert header[-4:] == ["violations", "feasible_for", "moves", "arch"]  # after the metrics, as in the JSONL
    table = [dict(zip(header, r, strict=True)) for r in cells]
    assert [r["arch_hash"] for r in table] == [r["arch_hash"] for r in jsonl]
    for row, line in zip(table, jsonl, strict=True):
        assert row["feasible_for"].split(";") == [d for d, ok in line["feasible_for"].items() if ok]
        assert json.loads(row["violations"]) == line["violations"]
    # the run's devices tell apart: every network is feasible on cpu and lrn (no budgets there), none on pi4
    assert {r["feasible_for"] for r in table} == {"cpu;lrn"}
    assert all("latency_ms@pi4" in json.loads(r["violations"]) for r in table)
    models = []
    for name in ("evaluations.jsonl", "evaluations.csv"):
        out = tmp_path / f"{name}.model.json"
        data = str(result.run_dir / name)
        argv = ["predict", "fit", "--data", data, "--target", "accuracy", "--predictor", "bayesian-ridge"]
        assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
        models.append(json.loads(out.read_text()))
    assert models[0]["n_train"] == models[1]["n_train"] == 3
    assert json.dumps(models[0]["state"], sort_keys=True) == json.dumps(models[1]["state"], sort_keys=True)
