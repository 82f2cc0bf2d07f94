"""Measured time models on real runtimes: onnxruntime (CPU provider) and torch (CPU); their provider and
device errors, the default fallback, NVML's absence, the cache. GPU parts skip without CUDA."""

from __future__ import annotations

import math

import pytest

from conftest import default_toolkit, get_seed
from na_toolkit.errors import HardwareError, TimeModelError
from na_toolkit.ir.architecture import Architecture, Node
from na_toolkit.ir.layers import LayerType, LayerTypeRegistry
from na_toolkit.timemodels import get_time_model
from na_toolkit.timemodels.cache import CacheKey, TimeEstimateCache
from na_toolkit.timemodels.measure import MeasureSettings
from na_toolkit.timemodels.nvml import Nvml, nvml_status
from na_toolkit.timemodels.onnxruntime_tm import OnnxRuntimeTimeModel, available_providers
from na_toolkit.timemodels.torch_tm import TorchTimeModel

QUICK = MeasureSettings.quick(min_runs=5, max_runs=60, max_time_s=0.2, rel_tolerance=0.1)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _nvml_ok() -> bool:
    with Nvml() as nv:
        return nv.available


@pytest.fixture(scope="module")
def small_cnn():
    return get_seed("simple-cnn")


def test_onnxruntime_measures_a_seed_and_records_the_conditions(small_cnn):
    tm = OnnxRuntimeTimeModel(settings=QUICK)
    est = tm.estimate(small_cnn)
    assert est.time_model == "onnxruntime" and est.device == "cpu" and est.batch_size == 1
    assert 0 < est.latency_p10_ms <= est.latency_ms <= est.latency_p90_ms
    assert est.latency_iqr_ms >= 0
    m = est.details["measurement"]
    assert m["runs"] >= QUICK.min_runs and m["warmup_runs"] >= QUICK.warmup_runs
    ctx = m["context"]
    assert ctx["provider"] == "CPUExecutionProvider"
    assert ctx["intra_op_threads"] == 1 and ctx["inter_op_threads"] == 1 and ctx["batch_size"] == 1
    assert "onnxruntime" in ctx["versions"] and ctx["device_name"]
    assert m["timer"] == "thread_cpu"  # one pinned thread: its CPU time, wall median recorded beside it
    assert m["wall_median_ms"] > 0
    assert est.peak_memory_bytes >= small_cnn.cost.weight_bytes
    assert est.train_step_ms is None  # ONNX Runtime measures inference only


def test_batch_size_is_measured_not_scaled():
    arch = get_seed("resnet-cifar")
    tm = OnnxRuntimeTimeModel(settings=QUICK, statistic="min")
    one, four = tm.estimate(arch, 1), tm.estimate(arch, 4)
    assert four.batch_size == 4 and four.details["measurement"]["context"]["batch_size"] == 4
    assert four.latency_ms > 1.8 * one.latency_ms  # four images of real work


@pytest.mark.skipif(_nvml_ok(), reason="NVML is present here; its absence cannot be checked")
def test_nvml_absence_is_handled_and_recorded(small_cnn):
    status = nvml_status()
    assert status.startswith("nvml unavailable: ")
    est = OnnxRuntimeTimeModel(settings=QUICK).estimate(small_cnn)
    assert est.details["nvml"]["status"] == status
    assert est.energy_mj is None


@pytest.mark.skipif("TensorrtExecutionProvider" in available_providers(), reason="TensorRT provider installed")
def test_asking_for_an_unavailable_provider_lists_the_available_ones():
    with pytest.raises(TimeModelError) as err:
        OnnxRuntimeTimeModel(device="cuda:0", provider="tensorrt")
    msg = str(err.value)
    assert "'tensorrt' is not available" in msg
    for p in available_providers():
        assert p in msg


@pytest.mark.skipif("CUDAExecutionProvider" in available_providers(), reason="CUDA provider installed")
def test_a_cuda_device_without_the_cuda_provider_is_an_error_unless_fallback_is_allowed(small_cnn):
    with pytest.raises(TimeModelError, match="no CUDA provider here.*allow_fallback = true"):
        OnnxRuntimeTimeModel(device="cuda:0", settings=QUICK)
    with pytest.warns(RuntimeWarning, match="measured on the CPU instead"):
        tm = OnnxRuntimeTimeModel(device="cuda:0", settings=QUICK, allow_fallback=True)
    assert tm.provider == "CPUExecutionProvider"
    est = tm.estimate(small_cnn)
    assert any("measured on the CPU instead" in w for w in est.warnings), est.warnings
    assert est.details["measurement"]["context"]["provider"] == "CPUExecutionProvider"


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in available_providers(), reason="needs onnxruntime-gpu and a GPU")
def test_onnxruntime_on_cuda_measures_on_the_gpu_with_nvml_telemetry(capfd):
    """The documented way to measure a GPU: the CUDA provider, no CPU fallback, NVML attached, and no line of
    ONNX Runtime's own logging per session on stderr (hundreds per profile buried the progress bar)."""
    tm = OnnxRuntimeTimeModel(device="cuda:0", settings=QUICK)
    assert tm.provider == "CUDAExecutionProvider" and tm.fallback_warning is None
    est = tm.estimate(get_seed("resnet-cifar"))
    context = est.details["measurement"]["context"]
    assert context["provider"] == "CUDAExecutionProvider" and 0 < est.latency_ms < 50
    assert not any("CPU instead" in w for w in est.warnings), est.warnings
    nv = est.details["nvml"]
    assert nv["status"] == "ok" or any("no GPU telemetry" in w for w in est.warnings), nv["status"]
    if nv["status"] == "ok":
        assert nv["before"]["name"] and nv["before"]["memory_total_bytes"] > 0
    assert "No registered plugin EP" not in capfd.readouterr().err


def test_one_parser_for_local_device_strings():
    from na_toolkit.timemodels.devices import LocalDevice, parse_device

    assert parse_device("cpu") == parse_device("cpu:0") == LocalDevice("cpu", 0)
    assert parse_device("cuda") == LocalDevice("cuda", 0) and str(parse_device(" CUDA:3 ")) == "cuda:3"
    assert parse_device("cuda:1").is_cuda and not parse_device("cpu").is_cuda
    with pytest.raises(HardwareError, match="unknown local device 'tpu:0'; known: cpu, cuda, cuda:N"):
        parse_device("tpu:0")
    with pytest.raises(HardwareError, match="the CPU is one device"):
        parse_device("cpu:1")


def test_contradictory_or_unknown_devices_and_options_are_typed_errors():
    with pytest.raises(HardwareError, match="known: cpu, cuda, cuda:N"):
        OnnxRuntimeTimeModel(device="tpu")
    with pytest.raises(TimeModelError, match="runs on the CPU"):
        OnnxRuntimeTimeModel(device="cuda:0", provider="cpu")
    with pytest.raises(TimeModelError, match="no option"):
        OnnxRuntimeTimeModel(threads=2)
    with pytest.raises(TimeModelError, match="thread_cpu"):
        OnnxRuntimeTimeModel(intra_op_threads=2, clock="thread_cpu")
    with pytest.raises(TimeModelError, match="statistic"):
        OnnxRuntimeTimeModel(statistic="mean")


class _BogusOp(LayerType):
    """A plugin layer whose ONNX op no runtime knows."""

    name = "bogus"

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("NoSuchOperator", inputs, node_id)


def test_an_architecture_the_runtime_rejects_is_a_typed_error():
    registry = LayerTypeRegistry()
    for name, lt in default_toolkit().layer_types.items():
        registry.add(lt, name)
    registry.add(_BogusOp())
    arch = Architecture((3, 8, 8), [Node("b", "bogus", {}, ("input",))], layer_types=registry)
    with pytest.raises(TimeModelError, match=r"ONNX Runtime \(CPUExecutionProvider\) rejected architecture"):
        OnnxRuntimeTimeModel(settings=QUICK).estimate(arch)


def test_cache_hits_in_memory_and_on_disk(tmp_path, small_cnn):
    path = tmp_path / "estimates.sqlite"
    tm = OnnxRuntimeTimeModel(settings=QUICK, cache=str(path))
    first = tm.estimate(small_cnn)
    again = tm.estimate(small_cnn)
    assert again == first and tm.cache.hits == 1 and tm.cache.misses == 1
    # another process's model with the same settings reads it back from SQLite without measuring
    other = OnnxRuntimeTimeModel(settings=QUICK, cache=TimeEstimateCache(path))
    assert other.estimate(small_cnn) == first and other.cache.hits == 1
    # different settings (threads) are a different key
    two_threads = OnnxRuntimeTimeModel(settings=QUICK, cache=TimeEstimateCache(path), intra_op_threads=2)
    est2 = two_threads.estimate(small_cnn)
    assert two_threads.cache.misses == 1 and est2.details["measurement"]["context"]["intra_op_threads"] == 2
    assert len(TimeEstimateCache(path)) == 2
    # a repeat measurement bypasses the cache on purpose
    fresh = tm.measure_again(small_cnn)
    assert fresh.details["measurement"] != first.details["measurement"]


def test_a_corrupt_cache_file_is_a_typed_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TimeModelError, match="not a usable SQLite file"):
        TimeEstimateCache(path)


def test_a_cache_in_a_folder_that_cannot_be_written_says_so_not_that_the_file_is_damaged(tmp_path):
    import os
    import shutil
    import subprocess

    if os.geteuid() == 0 and shutil.which("chattr") is None:
        pytest.skip("root, and no chattr +i here to make a folder read-only")
    folder = tmp_path / "read-only"
    folder.mkdir()
    subprocess.run(["chattr", "+i", folder], check=True) if os.geteuid() == 0 else folder.chmod(0o555)
    try:
        with pytest.raises(
            TimeModelError, match=r"cannot be opened for writing \(unable to open database file\): make"
        ):
            TimeEstimateCache(folder / "estimates.sqlite")
    finally:
        subprocess.run(["chattr", "-i", folder], check=True) if os.geteuid() == 0 else folder.chmod(0o755)


def test_torch_measures_inference_and_a_training_step_on_cpu(small_cnn):
    tm = TorchTimeModel(settings=QUICK)
    est = tm.estimate(small_cnn)
    assert est.time_model == "torch" and est.device == "cpu"
    assert est.latency_ms > 0 and est.train_step_ms > est.latency_ms  # backward + update cost more
    assert math.isclose(est.training_time_s(1000), est.train_step_ms, rel_tol=1e-9)
    assert est.details["train_measurement"]["context"]["phase"] == "train_step"
    assert est.details["measurement"]["context"]["intra_op_threads"] == 1


@pytest.mark.skipif(_cuda(), reason="CUDA is available here")
def test_torch_on_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(TimeModelError, match="sees no CUDA GPU"):
        TorchTimeModel(device="cuda:0")


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs an NVIDIA GPU with CUDA")
def test_torch_on_cuda_times_with_events_and_attaches_nvml_telemetry(small_cnn):
    est = TorchTimeModel(device="cuda:0", settings=QUICK).estimate(get_seed("resnet-cifar"))
    m = est.details["measurement"]
    assert m["timer"] == "cuda_events" and est.peak_memory_bytes > 0
    nv = est.details["nvml"]
    if nv["status"] == "ok":
        assert nv["before"]["name"] and nv["after"]["temperature_c"] is not None
        assert "throttle_reasons" in nv["before"]
    else:
        assert any("nvml unavailable" in w for w in est.warnings)


def test_get_time_model_builds_registered_models_and_names_unknown_ones():
    from na_toolkit.errors import UnknownComponentError

    toolkit = default_toolkit()
    tm = get_time_model("onnxruntime", toolkit, device="cpu", settings=QUICK)
    assert isinstance(tm, OnnxRuntimeTimeModel)
    with pytest.raises(UnknownComponentError, match="Did you mean 'onnxruntime'"):
        get_time_model("onnxrutime", toolkit)
    with pytest.raises(TypeError, match="must be a Toolkit"):
        get_time_model("onnxruntime", "cpu")  # the old signature's device in the toolkit's place


def _snapshot(energy_mj: int, time_s: float):
    from na_toolkit.timemodels.nvml import GpuTelemetry

    return GpuTelemetry(
        index=0,
        name="GPU",
        uuid=None,
        driver_version=None,
        sm_clock_mhz=1980,
        memory_clock_mhz=None,
        temperature_c=None,
        power_w=None,
        power_limit_w=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        utilization_gpu_pct=None,
        throttle_reasons=(),
        throttle_mask=None,
        total_energy_mj=energy_mj,
        time_s=time_s,
    )


def test_energy_per_call_is_mean_power_times_latency_not_window_energy_over_calls():
    # the H200 check saw 24.3 J over a 0.227 s window holding 135 timed calls of 0.344 ms (plus warm-up and
    # synchronisation): 107 W x 0.344 ms = 36.9 mJ per call; the energy over the calls would say 180 mJ
    from na_toolkit.timemodels.nvml import TelemetryRecord, energy_between

    before, after = _snapshot(3_923_766, 100.0), _snapshot(3_948_107, 100.227)
    tel = TelemetryRecord("ok", before, after, energy_between(before, after), 135, 0.344)
    assert tel.mean_power_w == pytest.approx(24.341 / 0.227)
    assert tel.energy_per_call_mj == pytest.approx(24.341 / 0.227 * 0.344)
    assert tel.to_json()["energy_per_call_mj"] == tel.energy_per_call_mj
    # without a latency: the upper bound; without a counter: nothing; a counter reset: nothing
    assert TelemetryRecord("ok", before, after, energy_between(before, after), 135).energy_per_call_mj == pytest.approx(
        24341 / 135
    )
    assert TelemetryRecord("ok", before, after, None, 135, 0.344).energy_per_call_mj is None
    assert energy_between(after, before) is None


CACHE_MADE_READ_ONLY_LIVE = """
import os, subprocess, sys, warnings
from na_toolkit.timemodels.base import TimeEstimate
from na_toolkit.timemodels.cache import CacheKey, TimeEstimateCache

def key(h):
    return CacheKey.make(h, "cpu", "onnxruntime", 1, {})

cache = TimeEstimateCache(sys.argv[1])
cache.put(key("before"), TimeEstimate("onnxruntime", "cpu", 1, 1.5))
shm = sys.argv[1] + "-shm"
subprocess.run(["chattr", "+i", shm], check=True) if os.geteuid() == 0 else os.chmod(shm, 0o444)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cache.put(key("after"), TimeEstimate("onnxruntime", "cpu", 1, 2.5))
    print("read", cache.get(key("before")).latency_ms, cache.get(key("after")).latency_ms, cache.get(key("x")))
    print("len", len(cache))
    cache.close()
for w in caught:
    print(type(w.message).__name__, w.message)
print("closed")
"""


def test_a_cache_whose_shm_is_made_read_only_under_a_search_goes_on_in_memory_with_one_warning(tmp_path):
    """A cache file (`cache="path"`) is open for a whole search and written at each new measurement; SQLite
    writes its WAL index through a shared memory map of `-shm`, so once that file was made immutable (root's
    `chattr +i`) the next access ended the process with SIGBUS (exit -7). The cache is now dropped with one
    warning, the estimates kept in memory, and what was committed stays in the file."""
    import os
    import shutil
    import subprocess
    import sys

    if os.geteuid() == 0 and shutil.which("chattr") is None:
        pytest.skip("root, and no chattr +i here to make a file read-only")
    path = tmp_path / "estimates.sqlite"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CACHE_MADE_READ_ONLY_LIVE, str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        subprocess.run(["chattr", "-i", f"{path}-shm"], check=True) if os.geteuid() == 0 else None
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "read 1.5 2.5 None",
        "len 2",
        f"TimeModelCacheWarning time-estimate cache {str(path)!r} can no longer be used (its -shm file was made "
        "read-only (chattr +i, chmod) while this process had it open); measurements go on with the estimates in "
        "memory, not saved for later runs: make the file and its folder writable again for the next run, or pass "
        "another cache path",
        "closed",
    ]
    reopened = TimeEstimateCache(path)
    assert len(reopened) == 1 and reopened.get(CacheKey.make("before", "cpu", "onnxruntime", 1, {})) is not None


def test_a_cache_write_that_fails_goes_on_in_memory_with_one_warning(tmp_path):
    """A write SQLite refuses (here a trigger's error, as a full disk's) no longer stops the search."""
    import sqlite3
    import warnings

    from na_toolkit.errors import TimeModelCacheWarning
    from na_toolkit.timemodels.base import TimeEstimate

    path = tmp_path / "estimates.sqlite"
    cache = TimeEstimateCache(path)
    other = sqlite3.connect(path)
    other.execute("CREATE TRIGGER full BEFORE INSERT ON estimates BEGIN SELECT RAISE(FAIL, 'disk is full'); END")
    other.commit()
    other.close()
    keys = [CacheKey.make(h, "cpu", "onnxruntime", 1, {}) for h in ("a", "b")]
    with pytest.warns(TimeModelCacheWarning, match=r"\(writing it failed: disk is full\); measurements go on"):
        cache.put(keys[0], TimeEstimate("onnxruntime", "cpu", 1, 1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: in memory only
        cache.put(keys[1], TimeEstimate("onnxruntime", "cpu", 1, 2.5))
    assert [cache.get(k).latency_ms for k in keys] == [1.5, 2.5] and len(cache) == 2
    cache.close()


def _fake_gpu_dist(where, monkeypatch, package_dir=None):
    """An installed "onnxruntime-gpu" distribution at `where` (its dist-info and, if given, its onnxruntime
    package as a link to `package_dir`), first on the path, the way a second build is installed beside one."""
    info = where / "onnxruntime_gpu-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 9.9.9\n")
    if package_dir is not None:
        (where / "onnxruntime").symlink_to(package_dir, target_is_directory=True)
    monkeypatch.syspath_prepend(str(where))


def test_onnxruntime_versions_name_the_build_that_runs_not_every_build_installed(tmp_path, monkeypatch):
    """On the lent H200 onnxruntime-gpu ran ahead of the image's CPU onnxruntime on the path, and the profile
    recorded the CPU build's version beside the GPU build's: the versions are those of the module that runs."""
    from pathlib import Path

    import onnxruntime

    from na_toolkit.timemodels import onnxruntime_tm

    running = onnxruntime.__version__
    onnxruntime_tm._onnxruntime_versions.cache_clear()
    monkeypatch.setattr(onnxruntime_tm, "_onnxruntime_versions", onnxruntime_tm._onnxruntime_versions.__wrapped__)
    here = onnxruntime_tm.onnxruntime_versions()
    assert here["onnxruntime"] == running
    # a GPU build installed, but not the module that runs: its version is not recorded
    _fake_gpu_dist(tmp_path / "elsewhere", monkeypatch)
    assert onnxruntime_tm.onnxruntime_versions() == {"onnxruntime": running}
    # the module that runs is the GPU build's: both named
    _fake_gpu_dist(tmp_path / "gpu", monkeypatch, Path(onnxruntime.__file__).parent)
    assert onnxruntime_tm.onnxruntime_versions() == {"onnxruntime": running, "onnxruntime-gpu": "9.9.9"}
    tm = OnnxRuntimeTimeModel(device="cpu", settings=QUICK)
    assert tm.cache_settings()["versions"] == {"onnxruntime": running, "onnxruntime-gpu": "9.9.9"}
