"""Every run records who provided each component (plugin, distribution, version), the machine and its load;
a plugin missing on --resume or export is an error naming it and its version."""

import json
import os
import subprocess
import sys

import pytest

from na_toolkit.errors import ConfigError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.loop import run_search
from test_search_cli import CONFIG

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prov")
    (tmp / "s.toml").write_text(CONFIG.replace("evaluations = 10", "evaluations = 4"))
    result = run_search(tmp / "s.toml", progress=False, toolkit=load_toolkit())
    return tmp, result


def test_summary_records_components_plugins_machine_and_load(run):
    tmp, result = run
    summary = json.loads((result.run_dir / "summary.json").read_text())
    (event,) = summary["provenance"]["events"]
    comps = event["components"]
    import na_toolkit_nb201

    assert comps["strategy"] == {
        "name": "evolution",
        "plugin": "na_toolkit.builtin.strategies",
        "dist": "na-toolkit",
        "version": __import__("na_toolkit").__version__,
    }
    assert comps["evaluator"]["plugin"] == "nb201" and comps["evaluator"]["dist"] == "na-toolkit-nb201"
    assert comps["evaluator"]["version"] == getattr(na_toolkit_nb201, "__version__", comps["evaluator"]["version"])
    assert comps["devices"]["pixel3"]["time_model"]["name"] == "nb201-table"
    # a table of latencies measured by others on their device: neither measured here nor a model's estimate
    assert comps["devices"]["pixel3"]["estimate"] == "measured elsewhere (nb201-table)"
    assert comps["devices"]["pixel3"]["figures"]["latency_ms"]["kind"] == "measured elsewhere"
    assert {lt["name"] for lt in comps["layer_types"]} >= {"conv2d", "zero"}
    assert event["machine"]["cores"] >= 1 and "torch" in event["machine"]["libraries"]
    assert event["event"] == "start" and len(event["load_average"]) == 3


def test_resume_and_export_without_a_plugin_the_run_used_name_it_and_its_version(run):
    tmp, result = run
    with pytest.raises(ConfigError, match=r"plugin nb201 \(na-toolkit-nb201 [^)]+\) provided .*nb201-table"):
        run_search(resume=result.run_dir, progress=False, toolkit=load_toolkit(entry_points=False))
    env = dict(os.environ, NA_TOOLKIT_DISABLE_PLUGINS="nb201")
    p = subprocess.run(
        [sys.executable, "-m", "na_toolkit", "export", str(result.run_dir), "--device", "pixel3", "--format", "onnx"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert p.returncode == 2 and "exporting from run" in p.stderr and "plugin nb201 (na-toolkit-nb201" in p.stderr


def test_a_plugin_that_is_installed_but_fails_to_load_is_named_with_its_error(run):
    import types
    import warnings

    import na_toolkit

    def broken(registry):
        raise RuntimeError("needs libfoo.so")

    nb201 = types.ModuleType("nb201")  # what the run used, now broken here
    nb201.na_register_evaluators = na_toolkit.hookimpl(broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tk = load_toolkit(strict=False, entry_points=False, extra_plugins=(nb201,))
    tmp, result = run
    with pytest.raises(ConfigError) as err:
        run_search(resume=result.run_dir, progress=False, toolkit=tk)
    message = str(err.value)
    assert (
        "plugin nb201 (na-toolkit-nb201 " in message and "(it is installed but failed to load: plugin nb201" in message
    )
    assert "RuntimeError: needs libfoo.so" in message and message.endswith("; fix them first")


def test_a_resume_adds_its_own_event(run):
    tmp, result = run
    resumed = run_search(resume=result.run_dir, progress=False, toolkit=load_toolkit())
    assert [e["event"] for e in resumed.summary()["provenance"]["events"]] == ["start", "resume"]


def test_report_of_a_run_where_no_candidate_met_every_budget(run):
    tmp, result = run
    assert result.best_overall is None  # the seed breaks the latency budget and 4 evaluations did not fix it
    p = subprocess.run(
        [sys.executable, "-m", "na_toolkit", "report", str(result.run_dir)], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr


def test_a_run_of_a_plugin_object_says_to_pass_the_toolkit_built_with_it(tmp_path):
    """A plugin handed to load_toolkit(extra_plugins=...) has no distribution to install: opening its run
    with another toolkit said only 'install them (or allow them)'."""
    import na_toolkit
    from conftest import NB201_SEARCH, config_doc, default_toolkit
    from na_toolkit.ir.seeds import Seed
    from na_toolkit.search import open_run

    nb201 = default_toolkit().seeds.get("nb201")

    class MySeeds:
        __name__ = "my_seeds"

        @staticmethod
        @na_toolkit.hookimpl
        def na_register_seeds(registry):
            registry.add(Seed("nb201-mine", "the NB201 cell, my copy", nb201.build, "c10"))

    tk = load_toolkit(extra_plugins=(MySeeds(),))
    doc = config_doc(NB201_SEARCH, tmp_path, evaluations=2, seed_network="nb201-mine", strategy="random")
    result = run_search(doc, toolkit=tk, progress=False, outputs=False)
    with pytest.raises(ConfigError) as info:
        open_run(result.run_dir, toolkit=default_toolkit())
    assert "plugin my_seeds provided nb201-mine; install them (or allow them), or build the toolkit with" in str(
        info.value
    )
    assert "(load_toolkit(extra_plugins=(...,))) and pass it: toolkit=... first" in str(info.value)
    assert open_run(result.run_dir, toolkit=tk).best == result.best
