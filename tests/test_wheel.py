"""The wheel holds everything a user needs. Built once per session from a copy of the working tree, installed
with `pip install --no-deps --target`, then used from a process that can see only that install: `python -S`
(no .pth files, so not the editable install of the repo) with PYTHONPATH = the install + the venv's
site-packages (for torch, numpy...), working directory outside the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from na_toolkit.plugins import ALLOW_ENV, DEFAULT_PLUGINS, DENY_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
# what never goes into a wheel's source copy
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "PIP_NO_INPUT": "1"}
# what the build needs from the repository (everything else, e.g. .venv, tests, benchmarks, stays out)
BUILD_INPUTS = (
    "na_toolkit",
    "hwmodels",
    "profiles",
    "setup.cfg",
    "pyproject.toml",
    "README.md",
    "MANIFEST.in",
    "LICENSE",
)

PROBE = r"""
import importlib, json, sys
from importlib import resources
import na_toolkit
from na_toolkit.plugins import DEFAULT_PLUGINS, load_toolkit
tk = load_toolkit(entry_points=False)
print(json.dumps({
    "na_toolkit": na_toolkit.__file__,
    "builtins": {m: importlib.import_module(m).__file__ for m in DEFAULT_PLUGINS},
    "errors": [str(e) for e in tk.errors],
    "hardware": {name: [src.kind, str(src.path)] for name, src in tk.hardware.items()},
    "data_dirs": {p: str(resources.files(p)) for p in ("na_toolkit.hwmodels", "na_toolkit.profiles")},
    "seeds": tk.seeds.names(),
}))
"""


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, **PIP_ENV},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(wheel file, install target, work folder)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=JUNK)
        elif path.is_file():
            shutil.copy2(path, src / name)
    whl, site = build_and_install(src, root, "na_toolkit-*.whl")
    return whl, site, root


def build_and_install(src: Path, root: Path, wheel_glob: str) -> tuple[Path, Path]:
    """Build the wheel of the project in `src` into root/dist and install it alone into root/site."""
    _pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(root / "dist"), str(src), cwd=root)
    (whl,) = (root / "dist").glob(wheel_glob)
    site = root / "site"
    _pip("install", "--quiet", "--no-deps", "--target", str(site), str(whl), cwd=root)
    return whl, site


def isolated_env(site: Path) -> dict[str, str | None]:
    purelib = sysconfig.get_paths()["purelib"]  # torch, numpy, onnx... but no .pth processing under -S
    return {"PYTHONPATH": os.pathsep.join([str(site), purelib]), ALLOW_ENV: "", DENY_ENV: None}


def repo_files(folder: str, pattern: str) -> list[str]:
    return sorted(p.name for p in (REPO_ROOT / folder).glob(pattern))


def test_wheel_contents(wheel):
    whl, _site, _root = wheel
    names = set(zipfile.ZipFile(whl).namelist())
    for folder, pattern in (("hwmodels", "*.toml"), ("profiles", "*.json")):
        for name in repo_files(folder, pattern):
            assert f"na_toolkit/{folder}/{name}" in names, f"{folder}/{name} is not in the wheel"
    for module in DEFAULT_PLUGINS:
        assert module.replace(".", "/") + ".py" in names
    # every package of the source tree is listed in setup.cfg (a forgotten one would be missing here)
    for init in (REPO_ROOT / "na_toolkit").rglob("__init__.py"):
        rel = init.relative_to(REPO_ROOT).as_posix()
        if "__pycache__" not in rel:
            assert rel in names, f"{rel} is not in the wheel: add its package to setup.cfg [options] packages"
    assert not any(n.startswith(("tests/", "hwmodels/", "profiles/", "benchmarks/")) for n in names)


def test_wheel_ships_the_license(wheel):
    """The LICENSE file travels in the wheel's metadata, and the declared license is the one it holds."""
    whl, _site, _root = wheel
    with zipfile.ZipFile(whl) as z:
        licenses = [n for n in z.namelist() if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
        assert licenses, "LICENSE is not in the wheel's .dist-info (setup.cfg license_files)"
        assert z.read(licenses[0]).decode() == (REPO_ROOT / "LICENSE").read_text()
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "MIT License" in (REPO_ROOT / "LICENSE").read_text()
    assert re.search(r"^License(-Expression)?: MIT$", metadata, re.M), "setup.cfg's license differs from LICENSE"


def test_install_alone_finds_data_and_builtin_plugins(wheel):
    _whl, site, root = wheel
    env = {**os.environ, **{k: v for k, v in isolated_env(site).items() if v is not None}}
    env.pop(DENY_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-S", "-c", PROBE], capture_output=True, text=True, cwd=root, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    inside = str(site.resolve()) + os.sep

    def from_install(path: str) -> bool:
        return str(Path(path).resolve()).startswith(inside)

    assert from_install(doc["na_toolkit"]), doc["na_toolkit"]
    assert doc["errors"] == []
    for module, path in doc["builtins"].items():
        assert from_install(path), f"{module} loaded from {path}, not from the wheel install"
    assert {"simple-cnn", "resnet-cifar", "mobilenetv2-cifar"} <= set(doc["seeds"])
    for package, path in doc["data_dirs"].items():
        assert from_install(path), f"{package} resolves to {path}, not to the wheel install"
    for folder, pattern, kind in (("hwmodels", "*.toml", "model"), ("profiles", "*.json", "profile")):
        shipped = repo_files(folder, pattern)
        for name in shipped:
            assert (site / "na_toolkit" / folder / name).is_file(), f"{folder}/{name} not installed"
        registered = {n: p for n, (k, p) in doc["hardware"].items() if k == kind}
        # at least one of each once the repository ships any; each registered one comes from the install
        assert len(registered) >= len(shipped)
        assert {Path(n).stem for n in shipped} <= set(registered)
        assert all(from_install(p) for p in registered.values()), registered


def test_cli_from_the_install_lists_builtins(run_cli, wheel):
    _whl, site, root = wheel
    res = run_cli("plugins", "--json", env=isolated_env(site), cwd=root, python_flags=("-S",))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    plugins = {p["name"]: p for p in res.json()["plugins"]}
    assert list(plugins) == list(DEFAULT_PLUGINS)
    assert all(p["error"] is None and p["dist"] == "na-toolkit" for p in plugins.values())
    assert "conv2d" in plugins["na_toolkit.builtin.layers"]["registered"]["layer_types"]
    assert "arch" in plugins["na_toolkit.builtin.commands"]["registered"]["commands"]


def test_nb201_plugin_wheel_ships_its_table_and_every_package(tmp_path):
    """The NAS-Bench-201 plugin's wheel holds its packages and its data (the table, SOURCE.md, the licenses),
    and the table loads from the install alone."""
    plugin = REPO_ROOT / "plugins" / "na_toolkit_nb201"
    src = tmp_path / "src"
    shutil.copytree(plugin, src, ignore=JUNK)
    whl, site = build_and_install(src, tmp_path, "na_toolkit_nb201-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    package = plugin / "na_toolkit_nb201"
    shipped = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in shipped:
        rel = path.relative_to(plugin).as_posix()
        assert rel in names, f"{rel} is not in the plugin's wheel: see plugins/na_toolkit_nb201/setup.cfg"
    assert {"na_toolkit_nb201/data/nb201.csv.gz", "na_toolkit_nb201/data/SOURCE.md"} <= names
    probe = "from na_toolkit_nb201.table import load_table; t = load_table(); print(t.path, len(t.arch_strs))"
    # the plugin from its install alone; na_toolkit from the repository (-S: no editable .pth files)
    path = os.pathsep.join([str(site), str(REPO_ROOT), sysconfig.get_paths()["purelib"]])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, rows = proc.stdout.split()
    assert Path(path).resolve().is_relative_to(site.resolve()) and int(rows) == 15625
