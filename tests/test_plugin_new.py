"""`na-toolkit plugin new NAME`: the skeleton it writes is a working plugin. Generated into a temporary
folder through the CLI (a subprocess), its own tests run with pytest in a subprocess that sees it only
through PYTHONPATH (nothing is installed), and it loads as a plugin given by module."""

from __future__ import annotations

import configparser
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import na_toolkit.testing
from na_toolkit.ir.onnx_import import from_onnx
from na_toolkit.plugins import ALLOW_ENV, load_toolkit

NAME = "kit_scale_plugin"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, run_cli):
    folder = tmp_path_factory.mktemp("plugin_new") / NAME
    res = run_cli("plugin", "new", NAME, "--out", folder, "--json")
    assert res.returncode == 0, res.stderr
    return folder, res.json()


def test_writes_a_pip_installable_package(generated):
    folder, doc = generated
    assert doc["name"] == NAME and doc["layer_types"] == [f"{NAME}_scale"] and doc["moves"] == [f"insert_{NAME}_scale"]
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == doc["files"]
    assert {"setup.cfg", "pyproject.toml", "README.md", f"{NAME}/__init__.py", f"tests/test_{NAME}.py"} <= set(
        doc["files"]
    )
    cfg = configparser.ConfigParser()
    cfg.read(folder / "setup.cfg")
    assert cfg["options"]["packages"].strip() == NAME
    assert cfg["options.entry_points"]["na_toolkit"].strip() == f"{NAME} = {NAME}"
    assert "setuptools.build_meta" in (folder / "pyproject.toml").read_text()
    tests = (folder / "tests" / f"test_{NAME}.py").read_text()
    assert "check_layer_type(" in tests and "check_move(" in tests
    # the README points to every check of the kit, for the components a plugin adds next
    readme = (folder / "README.md").read_text()
    checks = [n for n in na_toolkit.testing.__all__ if n.startswith("check_") and n != "check_time_estimate"]
    assert [c for c in checks if f"`{c}`" not in readme] == []
    # offline, `pip install -e .` fetches setuptools into an isolated build and fails: the README says how
    # to build with the environment's own (what tests/test_example_plugin.py installs with)
    assert "pip install -e ." in readme and "--no-build-isolation" in readme


def test_its_generated_tests_pass(generated):
    folder, _doc = generated
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder), ALLOW_ENV: "", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "5 passed" in proc.stdout, proc.stdout[-2000:]


@pytest.fixture
def plugin_module(generated, monkeypatch):
    folder, _doc = generated
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module(NAME)
    yield module
    for name in [m for m in sys.modules if m == NAME or m.startswith(NAME + ".")]:
        del sys.modules[name]


def test_it_loads_as_a_plugin_and_its_move_makes_networks_that_export(plugin_module):
    tk = load_toolkit(entry_points=False, extra_plugins=(plugin_module,))
    info = tk.plugins[NAME]
    assert info.error is None and info.version == "0.1.0"
    assert info.registered == {"layer_types": [f"{NAME}_scale"], "moves": [f"insert_{NAME}_scale"]}
    move = tk.moves.get(f"insert_{NAME}_scale")
    arch = tk.seed("resnet-cifar")
    rng = np.random.default_rng(0)
    for _ in range(3):
        arch = move.apply(arch, **move.sample(arch, rng))
    scales = [n for n in arch.nodes if n.type == f"{NAME}_scale"]
    assert len(scales) == 3
    back = from_onnx(arch.to_onnx(), tk.layer_types)
    assert back.hash == arch.hash  # its importer turns the emitted Mul / Add back into the same layers


@pytest.mark.parametrize("bad", ["My-Plugin", "class", "json", "na_toolkit"])
def test_refuses_a_name_that_is_not_a_package_name(bad, tmp_path, run_cli):
    line = run_cli("plugin", "new", bad, "--out", tmp_path / "x").error_line()
    assert repr(bad) in line
    assert not (tmp_path / "x").exists()


def test_refuses_a_folder_that_is_not_empty_and_takes_an_empty_one(tmp_path, run_cli):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    line = run_cli("plugin", "new", "my_plugin", "--out", full).error_line()
    assert "is not empty" in line and str(full) in line
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("plugin", "new", "my_plugin", "--out", empty)
    assert res.returncode == 0, res.stderr
    assert (empty / "my_plugin" / "layer.py").is_file()
    assert "my_plugin" in res.stdout and not list(tmp_path.glob(".*tmp*"))


def test_refuses_the_name_of_an_importable_module(tmp_path, run_cli):
    # numpy: the generated package's pytest config (pythonpath = .) would shadow it and its tests fail at collection
    line = run_cli("plugin", "new", "numpy", "--out", tmp_path / "x").error_line()
    assert line.startswith(
        f"na-toolkit: error: plugin name 'numpy' is the name of an importable module ({np.__file__}), which the "
        "plugin's package would shadow; choose another (e.g. numpy_plugin)"
    )
    assert not (tmp_path / "x").exists()
    # a module of the user's own, on PYTHONPATH, counts too; a bare folder (a namespace package) does not
    site = tmp_path / "site"
    (site / "lab_tools").mkdir(parents=True)
    (site / "lab_tools" / "__init__.py").write_text("")
    (site / "bare_folder").mkdir()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    line = run_cli("plugin", "new", "lab_tools", "--out", tmp_path / "y", env=env).error_line()
    assert f"is the name of an importable module ({site / 'lab_tools' / '__init__.py'})" in line
    res = run_cli("plugin", "new", "bare_folder", "--out", tmp_path / "z", env=env)
    assert res.returncode == 0, res.stderr


def test_refuses_the_name_of_an_installed_plugin(tmp_path, run_cli):
    # installed beside it, `plugin new nb201` would knock the shipped NB201 plugin out ("already loaded")
    site = tmp_path / "site"
    info = site / "lab_plugin-2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-plugin\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[na_toolkit]\nlabplug = lab_plugin_module\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), ALLOW_ENV: ""}
    line = run_cli("plugin", "new", "labplug", "--out", tmp_path / "x", env=env).error_line()
    assert line == (
        "na-toolkit: error: plugin name 'labplug' is the name of the installed plugin labplug (lab-plugin 2.0): "
        "installed beside it, one of the two would be refused as a second plugin of that name; choose another "
        "(e.g. labplug_plugin)"
    )
    assert not (tmp_path / "x").exists()


def test_its_registration_test_keeps_passing_when_the_plugin_adds_a_component(generated, monkeypatch):
    # the generated test asserted `registered == {"layer_types": [...], "moves": [...]}`: adding a time model
    # or a strategy to the plugin, as the README invites, failed the plugin's own first test
    import na_toolkit
    from na_toolkit.search.strategy import Strategy

    class _Walker(Strategy):
        name = f"{NAME}-walker"
        description = "proposes nothing"

        def ask(self, n):
            return []

    @na_toolkit.hookimpl
    def na_register_strategies(registry):
        registry.add(_Walker)

    folder, _doc = generated
    monkeypatch.syspath_prepend(str(folder))
    package = importlib.import_module(NAME)
    monkeypatch.setattr(package, "na_register_strategies", na_register_strategies, raising=False)
    tests: dict = {}
    exec(compile((folder / "tests" / f"test_{NAME}.py").read_text(), f"test_{NAME}.py", "exec"), tests)
    toolkit = load_toolkit(entry_points=False, extra_plugins=(package,))
    assert toolkit.plugins[NAME].registered["strategies"] == [f"{NAME}-walker"]
    tests["test_registers_its_layer_type_and_move"](toolkit)
