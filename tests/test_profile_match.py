"""A learned time model's profile against the runtime the run measures with: each difference of runtime,
version, threads or graph optimization is one warning of the run (summary.json, report.md, the
`na_toolkit.search` logger); a batch size other than the profile's is a config error before anything runs."""

import json
import logging

import pytest

from na_toolkit.errors import ConfigError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.components import build_components
from na_toolkit.search.config import load_config
from na_toolkit.search.diagnostics import device_warnings
from na_toolkit.search.loop import run_search
from na_toolkit.timemodels import get_time_model
from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path
from na_toolkit.timemodels.profile_match import runtime_differences
from test_figure_sources import FAST, search_doc

TK = load_toolkit()


def _doc(tmp_path, measure_options, batch_size=1):
    device = {
        "device": "cpu",
        "batch_size": batch_size,
        # check_device off: this machine's CPU is not the profile's (a warning of its own)
        "time_model": {"name": "learned", "options": {"device": "example-cpu", "check_device": False}},
        "measure": {"name": "onnxruntime", "options": {"settings": FAST, **measure_options}},
        "budgets": {"latency_ms": 50.0},
    }
    return search_doc(tmp_path, device, evaluations=1)


def test_each_setting_that_differs_is_named():
    learned = get_time_model("learned", TK, device="example-cpu", check_device=False)
    same = get_time_model("onnxruntime", TK, device="cpu")  # the profile's: 1 thread, 1 inter-op, "all"
    other = get_time_model("onnxruntime", TK, device="cpu", intra_op_threads=2, graph_optimization="basic")
    assert not [d for d in runtime_differences(learned, same) if "threads" in d or "optimization" in d or "clock" in d]
    diffs = runtime_differences(learned, other)
    assert "intra-op threads: 1 in the profile, 2 in the measure" in diffs
    assert "graph optimization level: all in the profile, basic in the measure" in diffs
    assert "clock: thread_cpu in the profile, wall in the measure" in diffs  # auto: wall with 2 threads
    assert not [d for d in diffs if "inter-op" in d or "provider" in d]
    torch = get_time_model("torch", TK, device="cpu")
    assert runtime_differences(learned, torch) == ["runtime: onnxruntime in the profile, torch in the measure"]


def test_a_version_the_profile_was_not_measured_with_is_named(tmp_path):
    profile = DeviceProfile.load(resolve_profile_path("example-cpu", TK.hardware))
    profile.runtime = {**profile.runtime, "versions": {"onnxruntime": "0.9.0"}}
    path = profile.save(tmp_path / "old-ort.json")
    learned = get_time_model("learned", TK, device=str(path), check_device=False)
    ort = get_time_model("onnxruntime", TK, device="cpu")
    assert [d for d in runtime_differences(learned, ort) if d.startswith("onnxruntime version: 0.9.0 in the profile")]


def test_the_run_carries_one_warning_naming_the_differences(tmp_path, caplog):
    doc = _doc(tmp_path, {"intra_op_threads": 2, "graph_optimization": "basic"})
    components = build_components(load_config(doc), TK)
    try:
        warnings = [w for w in device_warnings(components) if "other runtime settings" in w]
    finally:
        components.close()
    assert len(warnings) == 1 and warnings[0].startswith("devices.cpu.time_model: profile 'example-cpu'")
    assert "intra-op threads: 1 in the profile, 2 in the measure" in warnings[0]
    with caplog.at_level(logging.WARNING, logger="na_toolkit.search"):
        result = run_search(doc, toolkit=TK, progress=False)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert [w for w in summary["warnings"] if "other runtime settings" in w] == warnings
    assert "graph optimization level: all in the profile, basic" in (result.run_dir / "report.md").read_text()
    logged = [r for r in caplog.records if r.name == "na_toolkit.search" and "other runtime settings" in r.message]
    assert len(logged) == 1


def test_a_batch_size_other_than_the_profiles_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_components(load_config(_doc(tmp_path, {}, batch_size=4)), TK)
    msg = str(err.value)
    assert msg.startswith("devices.cpu.batch_size = 4: the time model 'learned' was fitted on profile 'example-cpu'")
    assert "set batch_size = 1" in msg and "na-toolkit profile --batch-size 4" in msg
