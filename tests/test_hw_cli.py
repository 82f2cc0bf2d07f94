"""`na-toolkit hw list | show | calibrate` in real subprocesses, the way a user runs them."""

from __future__ import annotations

import json

import pytest

from conftest import REPO_ROOT, SHIPPED_HARDWARE_MODELS
from na_toolkit.cli.hw import _profile_json
from na_toolkit.machine import gpu_names
from na_toolkit.timemodels.hwmodel import read_hardware_model
from na_toolkit.timemodels.measure import MeasureSettings
from na_toolkit.timemodels.profile import DeviceProfile

SHIPPED = sorted(SHIPPED_HARDWARE_MODELS)
STATS = ["median", "p10", "min"]


def test_list_shows_every_shipped_model(run_cli):
    table = run_cli("hw", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "kind"]
    for name in SHIPPED:
        assert any(line.split()[0] == name for line in lines[2:]), name
    # "best TFLOP/s" is the best floating-point rate: a T4's 65 at fp16, not its 130 int8 TOPS
    t4 = next(line.split() for line in lines[2:] if line.split()[0] == "t4")
    assert t4[2:4] == ["8.1", "65"], t4
    data = run_cli("hw", "list", "--json").json()
    models = {h["name"]: h for h in data["hardware"] if h["kind"] == "model"}
    assert set(SHIPPED) <= set(models)
    assert models["h100-sxm"]["model"]["measured_ceilings"]["memory_bandwidth_bytes_per_s"] == 3.0e12


def test_show_cites_sources(run_cli):
    shown = run_cli("hw", "show", "h100-sxm")
    assert shown.returncode == 0, shown.stderr
    assert "3350 GB/s" in shown.stdout and "H100 datasheet" in shown.stdout and "798 TFLOP/s" in shown.stdout
    data = run_cli("hw", "show", "raspberry-pi-4", "--json").json()
    assert data["kind"] == "soc" and data["peak_flops_per_s"] == {"fp32": 4.8e10}
    assert "Cortex-A72" in data["notes"]["peak_flops_per_s.fp32"]


@pytest.mark.slow
def test_calibrate_writes_a_measured_model(run_cli, tmp_path):
    out = tmp_path / "this-box.toml"
    result = run_cli("hw", "calibrate", "--out", out, "--repeats", "2", "--json")
    assert result.returncode == 0, result.stderr
    model = read_hardware_model(out)
    assert model.name == "this-box" and model.values_are == "measured" and model.kind == "cpu"
    # any CPU that runs this test multiplies faster than 100 MFLOP/s and copies faster than 100 MB/s
    assert model.peak_flops_per_s["fp32"] > 1e8 and model.memory_bandwidth_bytes_per_s > 1e8
    assert 0 < model.launch_overhead_s < 1e-3
    assert "MEASURED" in model.notes[""] and model.notes["peak_flops_per_s.fp32"].startswith("measured:")
    assert result.json()["peak_flops_per_s"]["fp32"] == model.peak_flops_per_s["fp32"]
    assert result.json()["source"] == str(out)  # where it wrote, in the answer
    text = run_cli("hw", "calibrate", "--out", tmp_path / "again.toml", "--repeats", "2", "-q")
    assert text.returncode == 0 and text.stdout.startswith(f"wrote {tmp_path / 'again.toml'}: again: fp32 ")
    # the written file is a hardware model like any other: listed through the env folder
    listed = run_cli("hw", "list", env={"NA_TOOLKIT_HWMODELS_PATH": str(tmp_path)})
    assert any(line.split()[0] == "this-box" for line in listed.stdout.splitlines()[2:]), listed.stdout


def test_show_tells_what_a_device_profile_measured(run_cli):
    """`hw list` lists profiles and docs/cli.md says `hw show NAME` shows them, but `hw show` refused one ("not a
    hardware model"): after `na-toolkit profile` there was no way to see what the profile held. It shows the
    device, runtime, the statistic its latencies are and those its records keep, counts, the networks' latency
    range and how to use it in a config."""
    shown = run_cli("hw", "show", "example-cpu")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith("example-cpu: device profile  [complete]") and "CPUExecutionProvider" in out
    assert "statistic          min (the profile's; records keep median, p10, min)" in out
    assert "437 kernels, 106 networks, 0 failures" in out and "networks (median)" in out
    assert 'time_model = { name = "learned", options = { device = "example-cpu" } }' in out
    path = REPO_ROOT / "profiles" / "example-cpu.json"
    profile = DeviceProfile.load(path)
    doc = _profile_json(profile, path)  # what --json prints (in process: one CLI start is enough)
    assert (doc["kind"], doc["statistic"], doc["statistics"], doc["networks"]) == ("profile", "min", STATS, 106)
    span = doc["network_latency_ms"]["min"]
    assert 0 < span["min"] <= span["median"] <= span["max"] <= doc["network_latency_ms"]["median"]["max"]
    # a `profile --quick` profile (smoke-test minimums) is said to be one
    assert doc["quick"] is False
    quick = profile.to_json()
    quick["settings"] = {"kernel": MeasureSettings.quick().to_json(), "network": MeasureSettings.quick().to_json()}
    assert _profile_json(DeviceProfile.from_json(quick), path)["quick"] is True


def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path):
    line = run_cli("hw", "show", "h100").error_line()
    assert "unknown hardware model or device profile 'h100'" in line
    assert "Did you mean 'h100-sxm'" in line and "x86-cpu" in line and "'./h100'" in line
    # a .json that is not a profile is named as such, not as a hardware model with bad TOML
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    line = run_cli("hw", "show", other).error_line()
    assert "is not a na_toolkit device profile" in line and "TOML:" not in line
    line = run_cli("hw", "calibrate", "--device", "tpu:0").error_line()
    assert "unknown device 'tpu:0'" in line and "known devices: cpu" in line
    line = run_cli("hw", "calibrate", "--out", tmp_path / "box.txt").error_line()
    assert ".toml" in line
    broken = tmp_path / "broken.toml"
    broken.write_text("schema_version = 1\nkind = 'gpu'\n")
    line = run_cli("hw", "show", broken).error_line()
    assert str(broken) in line and "'peak_flops_per_s'" in line


def test_cuda_request_without_cuda_is_one_line(run_cli):
    if gpu_names():
        pytest.skip("this machine has an NVIDIA GPU: the missing-CUDA message cannot be produced here")
    line = run_cli("hw", "calibrate", "--device", "cuda:0").error_line()
    assert "CUDA is not available" in line and "known devices: cpu" in line


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_names(), reason="needs an NVIDIA GPU (NVML finds none here)")
def test_calibrate_cuda(run_cli, tmp_path):
    out = tmp_path / "this-gpu.toml"
    result = run_cli("hw", "calibrate", "--device", "cuda:0", "--out", out, "--repeats", "3")
    assert result.returncode == 0, result.stderr
    model = read_hardware_model(out)
    assert model.kind == "gpu" and model.values_are == "measured"
    peaks = model.peak_flops_per_s
    assert set(peaks) == {"fp32", "tf32", "fp16", "bf16"} and peaks["fp32"] > 1e12
    # tensor cores: fp16 beats fp32 on every GPU with them (V100 and later; bf16 only from Ampere on)
    assert peaks["fp16"] > peaks["fp32"] and all(v > 0 for v in peaks.values())
    assert model.memory_bandwidth_bytes_per_s > 1e11 and 0 < model.launch_overhead_s < 1e-3


def test_estimate_gives_a_networks_latency_and_says_when_it_lies_outside_the_profile(run_cli):
    """`hw estimate` picks the time model from --device (a profile: learned) and prints each network's
    estimate; nb201's cell has layer types the shipped CPU profile never measured (zero, avgpool2d), so its
    estimate is flagged as an extrapolation, on stderr and in the JSON, while simple-cnn's is not."""
    from na_toolkit.cli.hw_estimate import default_time_model
    from na_toolkit.plugins import load_toolkit

    hardware = load_toolkit().hardware
    assert [default_time_model(d, hardware) for d in ("example-cpu", "p.json", "x86-cpu", "my.toml", "cuda:0")] == [
        "learned", "learned", "roofline", "roofline", "onnxruntime",
    ]  # fmt: skip
    res = run_cli("hw", "estimate", "simple-cnn", "nb201", "--device", "example-cpu", "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert doc["time_model"] == "learned" and doc["device"] == "example-cpu" and doc["batch_size"] == 1
    simple, nb201 = doc["estimates"]
    assert simple["latency_ms"] > 0 and simple["outside_profile_domain"] == []
    assert any("layer type" in r and "zero" in r for r in nb201["outside_profile_domain"]), nb201
    assert "nb201: outside what profile 'example-cpu' measured" in res.stderr


def test_estimate_takes_time_model_options_and_says_what_the_figure_is(run_cli):
    """`--option dtype=int8` reaches the roofline (before, a search's int8 figures could not be checked by
    `hw estimate`); the header and the JSON say the dtype the latency assumed."""
    fp32 = run_cli("hw", "estimate", "resnet-cifar", "--device", "jetson-orin-nano", "--json").json()
    int8 = run_cli("hw", "estimate", "resnet-cifar", "--device", "jetson-orin-nano", "--option", "dtype=int8", "--json")
    assert int8.returncode == 0, int8.stderr
    doc = int8.json()
    assert doc["options"] == {"dtype": "int8"} and fp32["options"] == {}
    assert doc["latency_source"] == {"kind": "estimated", "how": "time model roofline of jetson-orin-nano, int8"}
    assert fp32["latency_source"]["how"].endswith(", fp32")
    assert doc["estimates"][0]["latency_ms"] < fp32["estimates"][0]["latency_ms"]
    text = run_cli("hw", "estimate", "simple-cnn", "--device", "jetson-orin-nano", "--option", "dtype=fp16")
    assert "(estimated: time model roofline of jetson-orin-nano, fp16):" in text.stdout.splitlines()[0]
    line = run_cli("hw", "estimate", "simple-cnn", "--device", "x86-cpu", "--option", "dtyp=int8").error_line()
    assert "unknown option(s) dtyp. Did you mean 'dtype'?" in line
    line = run_cli("hw", "estimate", "simple-cnn", "--device", "x86-cpu", "--option", "dtype").error_line()
    assert "--option takes KEY=VALUE, got 'dtype'" in line


def test_an_unknown_device_names_all_three_kinds_and_a_file_beside_it(run_cli, tmp_path):
    # before: "unknown device profile 'edge-npu' ... Known: example-cpu, h200-torch-b1", with edge-npu.toml right
    # there and no word of hardware models
    (tmp_path / "edge-npu.toml").write_text((REPO_ROOT / "hwmodels" / "x86-cpu.toml").read_text())
    line = run_cli("hw", "estimate", "simple-cnn", "--device", "edge-npu", cwd=tmp_path).error_line()
    assert "unknown device profile, hardware model or local device 'edge-npu'" in line
    assert "x86-cpu" in line and "example-cpu" in line and "Did you mean the file ./edge-npu.toml?" in line
    assert "cpu or cuda:N" in line
    # a hardware model's .toml where the learned model needs a profile says what it is
    line = run_cli(
        "hw", "estimate", "simple-cnn", "--device", "./edge-npu.toml", "--time-model", "learned", cwd=tmp_path
    ).error_line()
    assert "'edge-npu.toml' is a hardware model, not a device profile: the roofline time model reads" in line


def test_show_prints_what_the_device_is(run_cli):
    text = run_cli("hw", "show", "x86-cpu").stdout.splitlines()
    assert text[1].startswith("  A generic x86-64") and any(line.startswith("quantity") for line in text)
    doc = run_cli("hw", "show", "x86-cpu", "--json").json()
    assert doc["about"].startswith("A generic x86-64") and "" not in doc["notes"]


def test_estimate_says_the_time_models_own_warnings(run_cli, tmp_path):
    """The audit: `hw estimate` hid the model's warnings (get_time_model ran under simplefilter("ignore")),
    so a measured ceiling 100x the datasheet's, or a profile too small to calibrate, went unsaid while
    `hw show` and a search warned. They go to stderr once and into every estimate's `warnings`."""
    hw = tmp_path / "t4.toml"
    hw.write_text(
        (REPO_ROOT / "hwmodels" / "t4.toml").read_text()
        + "\n[measured_ceilings]\nmemory_bandwidth_bytes_per_s = 3.2e13\n"
    )
    res = run_cli("hw", "estimate", "resnet-cifar", "simple-cnn", "--device", hw, "--json")
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("is 100.0x the datasheet peak") == 1, res.stderr
    for est in res.json()["estimates"]:
        assert any("100.0x the datasheet peak" in w for w in est["warnings"]), est
    doc = json.loads((REPO_ROOT / "profiles" / "example-cpu.json").read_text())
    doc["networks"] = doc["networks"][:2]
    doc["counts"]["networks"] = 2
    small = tmp_path / "small.json"
    small.write_text(json.dumps(doc))
    res = run_cli("hw", "estimate", "simple-cnn", "--device", small, "--json")
    assert res.returncode == 0, res.stderr
    assert "2 network measurements (< 5)" in res.stderr
    assert any("2 network measurements (< 5)" in w for w in res.json()["estimates"][0]["warnings"])


def test_estimate_says_the_batch_size_of_the_figure(run_cli):
    """The audit: nb201-table answers per batch of 1 whatever is asked, yet the header and the JSON said
    "batch size 8". They say the estimate's own batch size, and what was asked beside it."""
    res = run_cli("hw", "estimate", "nb201", "--time-model", "nb201-table", "--device", "pixel3", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("nb201-table on pixel3, batch size 1 (asked 8)"), res.stdout
    doc = run_cli(
        "hw", "estimate", "nb201", "--time-model", "nb201-table", "--device", "pixel3", "--batch-size", "8", "--json"
    ).json()
    assert doc["batch_size"] == 1 and doc["batch_size_asked"] == 8 and doc["estimates"][0]["batch_size"] == 1


def test_a_measured_estimate_shows_its_spread_and_the_load_beside_the_figure(run_cli):
    """The issue: "Report the spread and the load beside each measured figure". `hw estimate` with a measuring
    time model printed only the median."""
    res = run_cli("hw", "estimate", "simple-cnn", "--device", "cpu", "--time-model", "onnxruntime", "--json")
    assert res.returncode == 0, res.stderr
    (row,) = res.json()["estimates"]
    assert 0 < row["latency_p10_ms"] <= row["latency_ms"] <= row["latency_p90_ms"]
    assert row["load_average_1min"]["cores"] >= 1 and row["load_average_1min"]["after"] >= 0
    text = run_cli("hw", "estimate", "simple-cnn", "--device", "cpu", "--time-model", "onnxruntime").stdout
    assert " ms (p10 " in text and " cores), peak memory" in text, text
    roofline = run_cli("hw", "estimate", "simple-cnn", "--device", "x86-cpu", "--time-model", "roofline", "--json")
    assert roofline.json()["estimates"][0]["latency_p10_ms"] is None  # an estimate has no spread to show
