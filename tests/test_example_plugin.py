"""The example third-party plugin, installed the way a user installs it: `pip install` into a folder of its
own, then everything runs in subprocesses that see it only through that folder (PYTHONPATH) and its entry
point. The source tree of the plugin is not on the path of those processes. Its own tests, run against the
installed copy, include the plugin kit's conformance checks (`na_toolkit.testing`) on its layer type and
move, so the tutorial plugin is held to the contract the built-ins are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from na_toolkit.plugins import ALLOW_ENV, DENY_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = REPO_ROOT / "plugins" / "na_toolkit_example_se"
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "PIP_NO_INPUT": "1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(work folder, copy of the plugin source, install target). Built from a copy so the build leaves no
    build/ or egg-info in the repository."""
    root = tmp_path_factory.mktemp("example_se")
    src, site = root / "src", root / "site"
    shutil.copytree(
        PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **PIP_ENV},
        cwd=root,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, src, site


def plugin_env(site: Path) -> dict[str, str | None]:
    # Only this plugin among the installed ones, so another plugin's state cannot change the result.
    return {"PYTHONPATH": str(site), ALLOW_ENV: "example_se", DENY_ENV: None}


def test_pip_installed_the_package_and_its_entry_point(installed):
    _root, _src, site = installed
    assert (site / "na_toolkit_example_se" / "layer.py").is_file()
    (dist_info,) = site.glob("na_toolkit_example_se-0.1.0.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[na_toolkit]" in entry_points and "example_se = na_toolkit_example_se" in entry_points


def test_plugins_command_lists_it(run_cli, installed):
    root, _src, site = installed
    res = run_cli("plugins", "--json", env=plugin_env(site), cwd=root)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    doc = res.json()
    (se,) = [p for p in doc["plugins"] if p["name"] == "example_se"]
    assert se == {
        "name": "example_se",
        "version": "0.1.0",
        "dist": "na-toolkit-example-se",
        "builtin": False,
        "registered": {"layer_types": ["squeeze_excite"], "moves": ["insert_se"]},
        "error": None,
    }
    assert doc["errors"] == []
    denied = run_cli("plugins", "--json", env={**plugin_env(site), DENY_ENV: "example_se"}, cwd=root).json()
    assert "example_se" not in {p["name"] for p in denied["plugins"]}


def test_demo_applies_its_move_and_onnx_matches_torch(run_cli, installed):
    root, _src, site = installed
    out = root / "demo"
    res = run_cli("demo", "--move", "insert_se", "--steps", "3", "--out", out, "--json", env=plugin_env(site), cwd=root)
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert [s["operation"] for s in doc["steps"]] == ["insert_se"] * 3
    assert doc["onnx"]["parity_max_abs_err"] <= 1e-4
    arch = json.loads((out / "demo.json").read_text())
    se_nodes = [n for n in arch["nodes"] if n["type"] == "squeeze_excite"]
    assert len(se_nodes) == 3
    assert doc["cost"]["after"]["params"] > doc["cost"]["before"]["params"]  # the SE blocks' FC weights
    model = onnx.load(out / "demo.onnx")
    onnx.checker.check_model(model)
    assert sum(n.op_type == "Sigmoid" for n in model.graph.node) == 3
    # the architecture file it wrote is readable by any command that has the plugin
    shown = run_cli("arch", "show", out / "demo.json", "--json", env=plugin_env(site), cwd=root).json()
    assert shown["totals"]["params"] == doc["cost"]["after"]["params"]
    # its ONNX imports back with the SE blocks recognised (the plugin's import_onnx)
    res = run_cli(
        "arch", "import", out / "demo.onnx", "--out", out / "back.json", "--json", env=plugin_env(site), cwd=root
    )
    assert res.returncode == 0, res.stderr
    assert res.json()["params"] == doc["cost"]["after"]["params"]
    back = json.loads((out / "back.json").read_text())
    assert sum(n["type"] == "squeeze_excite" for n in back["nodes"]) == 3
    # ... and a clear error (not a traceback) without it
    line = run_cli(
        "arch", "show", out / "demo.json", env={**plugin_env(site), DENY_ENV: "example_se"}, cwd=root
    ).error_line()
    assert "unknown layer type 'squeeze_excite'" in line


def test_plugin_own_tests_pass_against_the_installed_copy(installed):
    root, src, site = installed
    proc = subprocess.run(
        # -P: the working directory is not put on sys.path, so the plugin can only come from `site`
        [sys.executable, "-P", "-m", "pytest", "-v", "-p", "no:cacheprovider", str(src / "tests")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(site), ALLOW_ENV: "", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    # among them the plugin kit's conformance checks (na_toolkit.testing) on its layer type and its move
    for test in ("test_the_layer_type_keeps_the_layer_contract", "test_the_move_keeps_the_move_contract"):
        assert f"{test} PASSED" in proc.stdout, proc.stdout[-3000:]
