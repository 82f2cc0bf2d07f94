"""Which statistic of a profile a learned time model predicts. A profile records each item's median, p10 and
minimum; profiles keep the minimum as their statistic, a search's measure reports the median by default. The
learned model predicts the statistic it is given (default: the profile's), and a search gives it its measure's
unless the config names one, so estimates and measurements are of the same latency
(benchmarks/latency-statistic.json: on this project's CPU a network's median was 1.41x its minimum, the model
fitted on minimums predicted 0.84x the measured medians, the one fitted on medians 1.03x). Old profiles load
as they did."""

import json
from pathlib import Path

import numpy as np
import pytest

from na_toolkit.errors import ConfigError, ProfileError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search import run_search
from na_toolkit.search.compat import RESOLVED_ARTIFACT
from na_toolkit.search.components import build_components
from na_toolkit.search.config import load_config
from na_toolkit.search.diagnostics import device_warnings
from na_toolkit.search.outputs import outcome_lines, pareto_table, report_markdown
from na_toolkit.store import SQLiteRunStore
from na_toolkit.timemodels.learned import LearnedTimeModel
from na_toolkit.timemodels.measure import MeasureSettings
from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path
from test_figure_sources import FAST, search_doc

TK = load_toolkit()
#: no boosted trees: the base regressors and the overhead calibration only, a fit of well under a second
CHEAP = {"boost": False, "check_device": False}


@pytest.fixture(scope="module")
def example():
    return DeviceProfile.load(resolve_profile_path("example-cpu", TK.hardware))


def _with_medians(profile, factor):
    """A copy of `profile` whose every record's median is `factor` times its minimum."""
    doc = profile.to_json()
    for part in ("kernels", "networks"):
        for item in doc[part]:
            item["measurement"]["median_ms"] = item["measurement"]["min_ms"] * factor
    return DeviceProfile.from_json(doc)


def test_the_model_predicts_the_statistic_it_is_given(example):
    profile = _with_medians(example, 1.5)
    archs = [TK.seed(name) for name in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")]
    default = LearnedTimeModel(profile, layer_types=TK.layer_types, **CHEAP)
    median = LearnedTimeModel(profile, layer_types=TK.layer_types, statistic="median", **CHEAP)
    assert default.statistic == "min" == profile.statistic  # the profile's own, as before
    assert median.statistic == "median"
    # relative least squares and a residual on scale-free features: medians 1.5x the minimums give predictions
    # 1.5x (within 1%: the residual's trees break near-ties between splits at float precision)
    assert np.allclose(median.predict_ms(archs) / default.predict_ms(archs), 1.5, rtol=1e-2)
    est = median.estimate(archs[0])
    assert est.details["statistic"] == "median"
    source = median.figure_source("latency_ms")
    assert source.how == "time model learned of example-cpu, fitted on its median latencies"
    assert (source.kind, source.statistic) == ("estimated", "median")


def test_an_old_profile_loads_and_a_statistic_its_records_lack_is_named(example, tmp_path):
    """A profile whose records keep only the median (its statistic) loads and predicts the median; asked for
    the minimum it is refused, naming the first record without it and what to do."""
    doc = example.to_json()
    doc["runtime"] = {**doc["runtime"], "statistic": "median"}
    for part in ("kernels", "networks"):
        for item in doc[part]:
            item["measurement"].pop("min_ms")
    path = tmp_path / "median-only.json"
    path.write_text(json.dumps(doc))
    old = LearnedTimeModel(str(path), layer_types=TK.layer_types, **CHEAP)
    assert old.statistic == "median"
    with pytest.raises(ProfileError) as err:
        LearnedTimeModel(str(path), layer_types=TK.layer_types, statistic="min", **CHEAP)
    msg = str(err.value)
    assert msg.startswith(f"profile 'example-cpu' ({path}): kernels[0].measurement needs a positive 'min_ms', got None")
    assert "na-toolkit profile" in msg


@pytest.fixture(scope="module")
def small(example, tmp_path_factory):
    """A part of example-cpu (80 kernels, 12 networks): a search builds its learned model in a tenth of a second."""
    doc = example.to_json()
    doc["kernels"], doc["networks"] = doc["kernels"][:80], doc["networks"][:12]
    path = tmp_path_factory.mktemp("small") / "small-cpu.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _doc(tmp_path, profile, learned_options=None, measure_options=None):
    device = {
        "device": "cpu",
        "time_model": {"name": "learned", "options": {"device": profile, **CHEAP, **(learned_options or {})}},
        "measure": {"name": "onnxruntime", "options": {"settings": FAST, **(measure_options or {})}},
        "budgets": {"latency_ms": 50.0},
    }
    return search_doc(tmp_path, device, evaluations=1)


def _built(doc):
    components = build_components(load_config(doc), TK)
    try:
        return components.time_models["cpu"].statistic, [w for w in device_warnings(components) if "statistic" in w]
    finally:
        components.close()


def test_a_search_fits_the_learned_model_on_its_measures_statistic(tmp_path, small):
    assert _built(_doc(tmp_path, small)) == ("median", [])  # the measure's default: no warning
    statistic, warnings = _built(_doc(tmp_path, small, {"statistic": "min"}))  # the config's choice holds
    assert statistic == "min" and len(warnings) == 1
    assert "statistic: the learned model predicts the min, the measure reports the median" in warnings[0]
    assert "drop the learned model's option statistic" in warnings[0]


def test_a_statistic_no_profile_has_is_a_config_error(tmp_path, small):
    with pytest.raises(ConfigError, match="statistic"):
        _built(_doc(tmp_path, small, {"statistic": "mean"}))


def test_a_default_that_affects_results_is_written_into_the_stored_config(tmp_path, small):
    """The learned model's statistic, chosen by the device's measure when the config names none, is in the
    run's stored config: a newer toolkit with another default resumes the run with the statistic it started
    with. The config the run was started with still resumes it (compared with the same values filled in). The
    summary (its config too) and report name the learned model and its statistic as what scored the candidates."""
    doc = _doc(tmp_path, small)
    first = run_search(doc, run_dir=tmp_path / "run", toolkit=TK, progress=False, outputs=False)
    # summary.json's config is the stored one: it lacked the statistic the run chose
    assert first.summary()["config"]["devices"]["cpu"]["time_model"]["options"]["statistic"] == "median"
    # the reports said only how the evaluated networks were measured, never what chose them to be measured
    scored = first.summary()["scoring_sources"]["latency_ms@cpu"]
    assert (scored["kind"], scored["statistic"], scored["by"]) == ("estimated", "median", "time_model learned")
    line = "latency_ms@cpu of the candidates before they were measured (what chose them): estimated by the device's"
    assert f"- {line} time_model learned (time model learned of " in report_markdown(first.summary())
    with SQLiteRunStore.open(first.run_dir, readonly=True) as store:
        stored = store.run().config
        assert store.artifact(RESOLVED_ARTIFACT) == {
            "devices.cpu.time_model.options.statistic": "median",
            "devices.cpu.rescale_by_measure": True,  # on by default with a measure (tests/test_latency_rescale.py)
            "devices.cpu.rescale_neighbours": 0,  # one factor for every network (tests/test_rescale_neighbours.py)
        }
    assert stored["devices"]["cpu"]["time_model"]["options"]["statistic"] == "median"
    assert "statistic" not in doc["devices"]["cpu"]["time_model"]["options"]
    resumed = run_search(doc, resume=first.run_dir, toolkit=TK, progress=False, outputs=False)
    assert resumed.summary()["evaluated"] == first.summary()["evaluated"]


def test_a_learned_latency_is_labelled_with_the_statistic_it_predicts_and_an_older_summary_renders(tmp_path, small):
    """A device scored by a learned model alone: its latencies were labelled "estimated", whichever statistic of
    the profile the model predicts; they say "estimated median" (or min), and a summary recorded before renders
    as it was recorded."""
    device = {"device": "cpu", "time_model": {"name": "learned", "options": {"device": small, **CHEAP}}}
    doc = search_doc(tmp_path, device, evaluations=1)
    summary = run_search(doc, toolkit=TK, progress=False, outputs=False).summary()
    source = summary["metric_sources"]["latency_ms@cpu"]
    assert (source["kind"], source["statistic"]) == ("estimated", "min")  # no measure: the profile's own
    assert "latency cpu (ms, estimated min)" in pareto_table(summary).splitlines()[0]
    assert "ms (estimated min)" in outcome_lines(summary)[0]
    del source["statistic"]
    assert "latency cpu (ms, estimated)" in pareto_table(summary).splitlines()[0]


def test_a_search_on_a_quick_profile_warns(tmp_path, small):
    """A profile made with `profile --quick` (the smoke tests' minimums, noisier latencies; what a first try
    following the docs makes) was used by a search without a word; the search now warns, naming it."""
    doc = json.loads(Path(small).read_text())
    doc["settings"] = {part: MeasureSettings.quick().to_json() for part in ("kernel", "network")}
    quick = tmp_path / "quick-cpu.json"
    quick.write_text(json.dumps(doc))
    for profile, expected in ((small, 0), (str(quick), 1)):
        components = build_components(load_config(_doc(tmp_path, profile)), TK)
        try:
            warnings = [w for w in device_warnings(components) if "--quick" in w]
        finally:
            components.close()
        assert len(warnings) == expected
    assert warnings[0].startswith(f"devices.cpu.time_model: profile 'example-cpu' ({quick}) was measured with")
    assert warnings[0].endswith("build it again without --quick")
