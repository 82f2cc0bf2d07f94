"""Hardware models: every shipped TOML loads and is sane (parametrized over the registry, in the manner of
timm's contract tests) and cites a source for each value; bad files are `HardwareError`s naming the file and
the key; the registry finds the shipped folders and honours NA_TOOLKIT_HWMODELS_PATH."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import SHIPPED_HARDWARE_MODELS, default_toolkit, refused_then_warned
from na_toolkit.builtin.hardware import HWMODELS_PATH_ENV, shipped_folder
from na_toolkit.errors import HardwareError, HardwareModelWarning
from na_toolkit.plugins import ALLOW_ENV, DENY_ENV, load_toolkit
from na_toolkit.timemodels.hwmodel import (
    DTYPE_BYTES,
    KINDS,
    HardwareModel,
    known_hardware_models,
    load_hardware_model,
    parse_hardware_model,
    read_hardware_model,
    save_hardware_model,
)

REPO = Path(__file__).resolve().parents[1]
#: the hardware registry hardware model names are looked up in
HW = default_toolkit().hardware
SHIPPED = known_hardware_models(HW)
REQUIRED = SHIPPED_HARDWARE_MODELS

GOOD = """\
# a comment is for the reader only: citations are data, in `about` and [sources]
schema_version = 1
description = "a test device"
kind = "gpu"
about = "header comment"
memory_bandwidth_bytes_per_s = 1.0e12  # not a citation
memory_capacity_bytes = 17_179_869_184
launch_overhead_s = 4e-6
power_w = 250

[peak_flops_per_s]
fp32 = 2.0e13
bf16 = 1.6e14

[measured_ceilings]
memory_bandwidth_bytes_per_s = 9.0e11

[measured_ceilings.flops_per_s]
bf16 = 1.2e14

[sources]
memory_bandwidth_bytes_per_s = "made-up datasheet, page 1"
"peak_flops_per_s.fp32" = "made-up datasheet, page 2"
"""


def test_the_required_devices_are_shipped():
    assert REQUIRED <= set(SHIPPED)


def test_shipped_folders_are_found_through_the_package():
    # a source checkout: setup.cfg's package_dir maps na_toolkit.hwmodels to the repo's top-level folder, and
    # the folder is this checkout's even where an editable install of another one (the main checkout of a git
    # worktree) maps the name to its own
    assert shipped_folder("na_toolkit.hwmodels") == REPO / "hwmodels"
    assert shipped_folder("na_toolkit.profiles") == REPO / "profiles"
    assert shipped_folder("na_toolkit.no_such_data") is None


def test_a_checkout_on_pythonpath_without_an_install_has_its_shipped_hardware():
    # the checkout's own folders, not found through an installed package: a checkout on PYTHONPATH and no
    # install (here: the editable install's finders taken off sys.meta_path) had no hardware model at all
    # ("unknown hardware model 'x86-cpu'. Known: (none registered)"), and a second checkout beside an editable
    # install read the installed checkout's files
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in str(getattr(f, '__name__', f))]\n"
        "sys.path[:] = [p for p in sys.path if '__editable__' not in p]\n"
        "import na_toolkit; assert na_toolkit.__file__.startswith(sys.argv[1]), na_toolkit.__file__\n"
        "from na_toolkit.plugins import load_toolkit\n"
        "tk = load_toolkit(entry_points=False)\n"
        "print(tk.hardware.get('x86-cpu').path, tk.hardware.get('example-cpu').path)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, env=env, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(REPO / "hwmodels" / "x86-cpu.toml"), str(REPO / "profiles" / "example-cpu.json")]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_sane(name, tmp_path):
    model = load_hardware_model(name, HW)
    assert model.name == name == model.source.stem
    assert model.kind in KINDS and model.values_are == "datasheet" and model.description
    assert "fp32" in model.peak_flops_per_s and set(model.peak_flops_per_s) <= set(DTYPE_BYTES)
    # plausible ranges for anything from a Raspberry Pi to an H200 (catches unit slips of 1e3)
    assert 1e10 <= model.peak_flops_per_s["fp32"] <= 2e14
    for dtype, peak in model.peak_flops_per_s.items():
        # tensor/vector units never make a narrower dtype slower than fp32 on these devices
        assert peak >= model.peak_flops_per_s["fp32"] and peak < 1e16, dtype
    assert 1e9 <= model.memory_bandwidth_bytes_per_s <= 1e13
    assert 2**30 <= model.memory_capacity_bytes <= 2**40
    assert 0 < model.launch_overhead_s < 1e-3
    assert model.power_w is None or 1 <= model.power_w <= 1000
    # measured ceilings sit below the datasheet ceilings they measure
    for dtype, value in model.measured_flops_per_s.items():
        assert value < model.peak_flops_per_s[dtype]
    if model.measured_memory_bandwidth_bytes_per_s is not None:
        assert model.measured_memory_bandwidth_bytes_per_s < model.memory_bandwidth_bytes_per_s
    # every value cites where it comes from
    keys = ["memory_bandwidth_bytes_per_s", "memory_capacity_bytes", "launch_overhead_s"]
    keys += [f"peak_flops_per_s.{d}" for d in model.peak_flops_per_s]
    keys += ["power_w"] if model.power_w is not None else []
    for key in keys:
        assert len(model.notes.get(key, "")) > 15, f"{name}: {key} has no citation in [sources]"
    # written back, it reads back the same, citations included
    again = read_hardware_model(save_hardware_model(model, tmp_path / f"{name}.toml"))
    assert again.to_dict() == model.to_dict()
    assert {k: v for k, v in again.notes.items() if k in keys} == {k: model.notes[k] for k in keys}


def test_measured_ceilings_of_this_project_devices():
    h100, h200 = load_hardware_model("h100-sxm", HW), load_hardware_model("h200-sxm", HW)
    assert h100.bandwidth_bytes_per_s() == 3.0e12 and h100.flops_per_s("bf16") == 7.98e14
    assert h200.bandwidth_bytes_per_s() == 4.3e12 and h200.flops_per_s("bf16") == 7.88e14
    assert h100.bandwidth_bytes_per_s(prefer_measured=False) == 3.35e12
    assert h100.flops_per_s("bf16", prefer_measured=False) == pytest.approx(989.5e12)
    assert h100.ridge_point_flops_per_byte("fp32") == pytest.approx(67e12 / 3.0e12)


def test_a_measured_ceiling_well_above_its_peak_is_warned_about(tmp_path):
    # before, 30 GB/s measured against a 17 GB/s datasheet peak (a unit or device mistake) was used silently
    path = tmp_path / "dev.toml"
    path.write_text(GOOD.replace("memory_bandwidth_bytes_per_s = 9.0e11", "memory_bandwidth_bytes_per_s = 1.8e12"))
    with pytest.warns(HardwareModelWarning, match=r"measured_ceilings.memory_bandwidth_bytes_per_s = 1.8e\+12 is 1.8x"):
        model = read_hardware_model(path)
    assert model.bandwidth_bytes_per_s() == 1.8e12  # used as written: the warning says so
    path.write_text(GOOD.replace("bf16 = 1.2e14", "bf16 = 1.9e14"))  # 1.19x: a boost clock, a rounded datasheet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_hardware_model(path)


def test_parse_keeps_values_and_citations(tmp_path):
    path = tmp_path / "dev.toml"
    path.write_text(GOOD)
    model = read_hardware_model(path)
    assert model.name == "dev" and model.kind == "gpu" and model.power_w == 250
    assert model.memory_capacity_bytes == 16 * 2**30
    assert model.peak_flops_per_s == {"fp32": 2e13, "bf16": 1.6e14}
    assert model.flops_per_s("bf16") == 1.2e14 and model.flops_per_s("fp32") == 2e13
    assert model.notes["memory_bandwidth_bytes_per_s"] == "made-up datasheet, page 1"
    assert model.notes["peak_flops_per_s.fp32"] == "made-up datasheet, page 2"
    assert model.notes[""] == "header comment"
    with pytest.raises(HardwareError, match="no peak for dtype 'int8'.*fp32, bf16"):
        model.flops_per_s("int8")


BAD = [
    # (edit of GOOD, key the message must name, fragment of the message)
    (lambda t: t.replace("schema_version = 1", "schema_version = 2"), "schema_version", "not supported"),
    (lambda t: t.replace("schema_version = 1\n", ""), "schema_version", "missing"),
    (
        lambda t: t.replace("memory_bandwidth_bytes_per_s = 1.0e12  # not a citation\n", ""),
        "memory_bandwidth_bytes_per_s",
        "missing",
    ),
    (lambda t: t.replace("launch_overhead_s = 4e-6", "launch_overhead_s = -4e-6"), "launch_overhead_s", ">= 0"),
    (lambda t: t.replace("power_w = 250", "power_w = 0"), "power_w", "> 0"),
    (lambda t: t.replace("power_w = 250", 'power_w = "250 W"'), "power_w", "finite number"),
    (lambda t: t.replace("fp32 = 2.0e13\n", ""), "peak_flops_per_s.fp32", "missing"),
    (lambda t: t.replace("bf16 = 1.6e14", "fp12 = 1.6e14"), "peak_flops_per_s.fp12", "unknown dtype"),
    (lambda t: t.replace("bf16 = 1.6e14", "bf16 = nan"), "peak_flops_per_s.bf16", "finite number"),
    (lambda t: t.replace('kind = "gpu"', 'kind = "tpu"'), "kind", "one of gpu, cpu, soc"),
    (lambda t: t.replace("power_w = 250", "power_w = 250\nclock_hz = 1e9"), "clock_hz", "unknown key"),
    (
        lambda t: t.replace("memory_capacity_bytes = 17_179_869_184", "memory_capacity_bytes = 1.5"),
        "memory_capacity_bytes",
        "whole number",
    ),
    (
        lambda t: t.replace('description = "a test device"', 'name = "other"\ndescription = "a test device"'),
        "name",
        "differs from the file name",
    ),
    (
        lambda t: t.replace("[measured_ceilings.flops_per_s]\nbf16", "[measured_ceilings.flops_per_s]\nint8"),
        "measured_ceilings.flops_per_s.int8",
        "no peak",
    ),
    (
        lambda t: t.replace("[peak_flops_per_s]\nfp32 = 2.0e13\nbf16 = 1.6e14\n", "").replace(
            'kind = "gpu"', 'kind = "gpu"\npeak_flops_per_s = 3'
        ),
        "peak_flops_per_s",
        "must be a table",
    ),
    (
        lambda t: t.replace('"peak_flops_per_s.fp32" =', '"peak_flops_per_s.int8" ='),
        "sources.peak_flops_per_s.int8",
        "cites no value",
    ),
    (
        lambda t: t.replace(
            'memory_bandwidth_bytes_per_s = "made-up', 'memory_bandwidth_bytes_per_s = 3\nx = "made-up'
        ),
        "sources.memory_bandwidth_bytes_per_s",
        "must be a string",
    ),
    (lambda t: t.replace('about = "header comment"', "about = 3"), "about", "must be a string"),
    # unit mistakes: a value no device has, by the factor of a unit prefix
    (
        lambda t: t.replace("fp32 = 2.0e13", "fp32 = 20"),
        "peak_flops_per_s.fp32",
        "a unit mistake? The value is in FLOP/s",
    ),
    (
        lambda t: t.replace("memory_bandwidth_bytes_per_s = 1.0e12  #", "memory_bandwidth_bytes_per_s = 1000  #"),
        "memory_bandwidth_bytes_per_s",
        "outside what any device has",
    ),
    (lambda t: t.replace("launch_overhead_s = 4e-6", "launch_overhead_s = 4"), "launch_overhead_s", "in seconds"),
    (
        lambda t: t.replace("memory_capacity_bytes = 17_179_869_184", "memory_capacity_bytes = 16"),
        "memory_capacity_bytes",
        "a unit mistake",
    ),
    (lambda t: t.replace("bf16 = 1.2e14", "bf16 = 1.2e20"), "measured_ceilings.flops_per_s.bf16", "a unit mistake"),
]


@pytest.mark.parametrize("edit,key,fragment", BAD, ids=[f"{b[1]}-{b[2]}" for b in BAD])
def test_bad_file_names_the_file_and_key(edit, key, fragment, tmp_path):
    path = tmp_path / "dev.toml"
    path.write_text(edit(GOOD))
    with pytest.raises(HardwareError) as info:
        read_hardware_model(path)
    message = str(info.value)
    assert message.startswith(str(path)) and f"{key!r}" in message and fragment in message, message


def test_unreadable_files_are_hardware_errors(tmp_path):
    with pytest.raises(HardwareError, match="not valid TOML"):
        parse_hardware_model("schema_version = = 1", tmp_path / "x.toml")
    with pytest.raises(HardwareError, match="no such hardware model file"):
        load_hardware_model(tmp_path / "missing.toml")


def test_unknown_name_lists_the_known_models():
    with pytest.raises(HardwareError) as info:
        load_hardware_model("h100", HW)
    message = str(info.value)
    assert "unknown hardware model 'h100'" in message and "Did you mean 'h100-sxm'" in message
    assert all(name in message for name in REQUIRED)


def test_a_name_needs_the_hardware_registry():
    with pytest.raises(HardwareError, match="'t4'.*hardware registry.*path of a .toml file"):
        load_hardware_model("t4")


def test_save_refuses_a_model_that_would_not_read_back(tmp_path):
    model = load_hardware_model("t4", HW)
    bad = replace(model, memory_bandwidth_bytes_per_s=-1.0)
    target = tmp_path / "t4.toml"
    with pytest.raises(HardwareError, match="memory_bandwidth_bytes_per_s"):
        save_hardware_model(bad, target)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(HardwareError, match=r"\.toml"):
        save_hardware_model(model, tmp_path / "t4.txt")


def test_save_names_the_model_after_the_file(tmp_path):
    model = HardwareModel("anything", "cpu", {"fp32": 1e11}, 2e10, 2**33, 3e-6)
    saved = read_hardware_model(save_hardware_model(model, tmp_path / "mine.toml"))
    assert saved.name == "mine" and saved.peak_flops_per_s == {"fp32": 1e11} and saved.power_w is None
    assert saved.notes["memory_bandwidth_bytes_per_s"]  # what a value is, is written even without a citation
    assert "no source given" in saved.notes["memory_bandwidth_bytes_per_s"]


def test_env_folders_add_models_and_never_replace_shipped_ones(tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "lab-box.toml").write_text(GOOD)
    (extra / "t4.toml").write_text(GOOD)  # clashes with a shipped model
    (extra / "lab-box-profile.json").write_text("{}")
    monkeypatch.setenv(HWMODELS_PATH_ENV, f"{extra}{os.pathsep}{tmp_path / 'nowhere'}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        toolkit = load_toolkit(strict=False, entry_points=False)  # others' work in progress must not fail this
    messages = [str(w.message) for w in caught]
    assert any("t4" in m and "already taken" in m for m in messages), messages
    assert any("nowhere" in m and "not a folder" in m for m in messages), messages
    hardware = toolkit.hardware
    assert "lab-box" in known_hardware_models(hardware)
    assert load_hardware_model("lab-box", hardware).peak_flops_per_s["fp32"] == 2e13
    assert load_hardware_model("t4", hardware).source.parent == REPO / "hwmodels"
    with pytest.raises(HardwareError, match="is a device profile.*not a hardware model"):
        load_hardware_model("lab-box-profile", hardware)


def test_toml_numbers_read_back_exactly(tmp_path):
    # numbers any device may have (a file with a value no device has is refused: a unit mistake)
    values = [3.35e12, 1 / 3 * 1e13, 7.0e6 + 1 / 3, 123.25e9, 6.4e8]
    for v in values:
        model = HardwareModel("n", "cpu", {"fp32": v}, v, 2**30, v * 1e-18)
        back = read_hardware_model(save_hardware_model(model, tmp_path / "n.toml"))
        assert back.peak_flops_per_s["fp32"] == v and back.memory_bandwidth_bytes_per_s == v
        assert math.isclose(back.launch_overhead_s, v * 1e-18, rel_tol=0, abs_tol=0)


# ---- registration: a plugin's hardware that registers nothing, or under a wrong kind, is refused -----------
HW_PLUGIN = """
from pathlib import Path

import na_toolkit
from na_toolkit.timemodels.hardware import HardwareSource


@na_toolkit.hookimpl
def na_register_hardware(registry):
    here = Path(__file__).parent
    {body}
"""


def hw_plugin(root: Path, name: str, body: str) -> Path:
    """A real plugin package `name` under `root` (shipping `hardware/lab-box.toml` and an empty `empty/`)."""
    package = root / name
    (package / "hardware").mkdir(parents=True)
    (package / "empty").mkdir()
    (package / "hardware" / "lab-box.toml").write_text(GOOD)
    (package / "__init__.py").write_text(HW_PLUGIN.format(body=body))
    return package


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'registry.add_folder(here / "hardwrae")',  # a typo, or package data missing from the wheel
            "plugin {name}: add_folder('{package}/hardwrae'): the folder does not exist (a misspelt path, or "
            "package data left out of the distribution: declare the files in package_data)",
        ),
        (
            'registry.add_folder(here / "empty")',
            "plugin {name}: add_folder('{package}/empty'): the folder holds no hardware model (*.toml) or device "
            "profile (*.json)",
        ),
        (
            'registry.add(HardwareSource("hw-badkind", "modle", here / "hardware" / "lab-box.toml"))',
            "plugin {name}: hardware source 'hw-badkind' has kind 'modle'; a kind is 'model' (a TOML hardware "
            "model) or 'profile' (a JSON device profile)",
        ),
        (
            'registry.add(HardwareSource("hw-missing", "model", here / "hardware" / "missing.toml"))',
            "plugin {name}: hardware model 'hw-missing': {package}/hardware/missing.toml is not a file",
        ),
    ],
    ids=["misspelt-folder", "empty-folder", "unknown-kind", "missing-file"],
)
def test_hardware_that_would_register_nothing_or_a_wrong_kind_is_refused(body, message, tmp_path, monkeypatch):
    name = f"hwplug_{os.getpid()}_{tmp_path.name[-1]}"  # tmp_path ends in the test's index: a fresh module
    package = hw_plugin(tmp_path, name, body)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    expected = message.format(name=name, package=package)
    toolkit = refused_then_warned(expected, entry_points=False, extra_plugins=(module,))
    assert SHIPPED_HARDWARE_MODELS <= set(toolkit.hardware.names())  # the others keep working
    assert not {"hw-badkind", "hw-missing", "lab-box"} & set(toolkit.hardware.names())


def test_a_plugin_folder_of_hardware_registers_by_file_stem(tmp_path, monkeypatch):
    name = f"hwplug_good_{os.getpid()}"
    hw_plugin(tmp_path, name, 'registry.add_folder(here / "hardware")')
    monkeypatch.syspath_prepend(str(tmp_path))
    toolkit = load_toolkit(entry_points=False, extra_plugins=(__import__(name),))
    assert toolkit.plugins[name].registered == {"hardware": ["lab-box"]}
    assert load_hardware_model("lab-box", toolkit.hardware).peak_flops_per_s["fp32"] == 2e13


def test_cli_hw_list_warns_about_a_plugin_with_an_unknown_kind_and_lists_the_rest(tmp_path, run_cli):
    name = f"hwplug_cli_{os.getpid()}"
    hw_plugin(tmp_path, name, 'registry.add(HardwareSource("hw-badkind", "modle", here / "hardware" / "lab-box.toml"))')
    info = tmp_path / "hwplug_cli-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwplug-cli\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[na_toolkit]\nhwplug = {name}\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    env |= {ALLOW_ENV: "hwplug", DENY_ENV: None}
    res = run_cli("hw", "list", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == (
        "na-toolkit: warning: plugin hwplug (hwplug-cli 1.0): hardware source 'hw-badkind' has kind 'modle'; a "
        "kind is 'model' (a TOML hardware model) or 'profile' (a JSON device profile)"
    )
    listed = {h["name"]: h["kind"] for h in res.json()["hardware"]}
    assert "hw-badkind" not in listed and SHIPPED_HARDWARE_MODELS <= set(listed)
    line = run_cli("--strict-plugins", "hw", "list", env=env).error_line()
    assert line.startswith("na-toolkit: error: plugin hwplug (hwplug-cli 1.0): hardware source 'hw-badkind'")
