"""Measure the local machine's roofline ceilings and write them as a hardware model.

Three micro-benchmarks, each the median of repeated runs after a warm-up:
- compute: a large square matrix product (torch.mm), 2·n³ FLOPs; on CUDA per dtype (fp32 with TF32 off, tf32,
  fp16, bf16), on the CPU fp32 only;
- memory: a large tensor copy (`dst.copy_(src)`), bandwidth counted as bytes read + bytes written, with the
  buffers several times larger than the last-level cache;
- launch overhead: a run of tiny element-wise ops, per-op time.
The whole calibration takes a few seconds on a 2-core CPU. Nothing about the device is changed: torch's fp32
matmul precision (a library setting that allows TF32, not a GPU setting) is restored afterwards.
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..machine import cpu_model
from .devices import torch_device
from .hwmodel import HardwareModel

#: seconds one timed matrix product should take at least, so timer and launch noise stay small
_TARGET_RUN_S = 0.02
_REPEATS = 5
_CPU_COPY_BYTES = 128 * 2**20  # > the L3 of common server CPUs per socket share (35.8 MiB on this project's machines)
_GPU_COPY_BYTES = 1 * 2**30  # >> GPU L2 (50 MiB on H100)
_LAUNCH_OPS = 1000


@dataclass(frozen=True)
class Ceiling:
    """One calibrated ceiling: the median of repeated runs, the runs, and what was run. (Not a
    `measure.Measurement`, which is the sample statistics of one timed network.)"""

    value: float
    runs_s: tuple[float, ...]
    what: str


def _timer(dev: Any) -> Callable[[Callable[[], object]], float]:
    """A function timing one call of `fn` in seconds: CUDA events with synchronisation on a GPU, the
    monotonic clock on the CPU."""
    import torch

    if dev.type == "cuda":

        def time_cuda(fn: Callable[[], object]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(dev)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0

        return time_cuda

    def time_cpu(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return time_cpu


def _median_runs(
    timer: Callable[[Callable[[], object]], float], fn: Callable[[], object], repeats: int
) -> tuple[float, tuple[float, ...]]:
    timer(fn)  # warm-up: allocator, kernels/JIT, page faults, caches
    runs = tuple(timer(fn) for _ in range(repeats))
    return statistics.median(runs), runs


def measure_matmul_flops_per_s(dev: Any, dtype: Any, repeats: int = _REPEATS, max_n: int | None = None) -> Ceiling:
    """FLOP/s of a square matrix product, the size doubled until one product takes >= 20 ms."""
    import torch

    timer = _timer(dev)
    max_n = max_n or (16384 if dev.type == "cuda" else 4096)
    # Start where BLAS is near its peak (small products are cache/threading bound and would under-report).
    n = min(max_n, 2048 if dev.type == "cuda" else 1024)
    while True:
        a = torch.randn(n, n, device=dev).to(dtype)
        b = torch.randn(n, n, device=dev).to(dtype)
        out = torch.empty(n, n, device=dev, dtype=dtype)

        def mm(a: Any = a, b: Any = b, out: Any = out) -> None:
            torch.mm(a, b, out=out)

        timer(mm)  # warm-up at this size
        if timer(mm) >= _TARGET_RUN_S or n >= max_n:
            break
        n *= 2
    median_s, runs = _median_runs(timer, mm, repeats)
    name = str(dtype).replace("torch.", "")
    return Ceiling(2 * n**3 / median_s, runs, f"median of {repeats} {n}x{n} {name} torch.mm")


def measure_copy_bytes_per_s(dev: Any, nbytes: int | None = None, repeats: int = _REPEATS) -> Ceiling:
    """Bandwidth of a large device-to-device copy, counting bytes read plus bytes written (as STREAM does)."""
    import torch

    nbytes = nbytes or (_GPU_COPY_BYTES if dev.type == "cuda" else _CPU_COPY_BYTES)
    src = torch.ones(nbytes // 4, device=dev)
    dst = torch.empty_like(src)
    median_s, runs = _median_runs(_timer(dev), lambda: dst.copy_(src), repeats)
    return Ceiling(
        2 * nbytes / median_s, runs, f"median of {repeats} copies of {nbytes // 2**20} MiB, read + write counted"
    )


def measure_launch_overhead_s(dev: Any, ops: int = _LAUNCH_OPS, repeats: int = _REPEATS) -> Ceiling:
    """Per-op time of `ops` back-to-back tiny element-wise adds: dispatch cost with no work to hide it."""
    import torch

    x = torch.zeros(1, device=dev)
    y = torch.empty_like(x)

    def burst() -> None:
        for _ in range(ops):
            torch.add(x, x, out=y)

    median_s, runs = _median_runs(_timer(dev), burst, repeats)
    return Ceiling(
        median_s / ops, tuple(r / ops for r in runs), f"median of {repeats} bursts of {ops} 1-element torch.add"
    )


def _memory_capacity_bytes(dev: Any) -> int:
    import torch

    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _gpu_power_w(dev: Any) -> float | None:
    """The enforced power limit from NVML (read only; never changed), or None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(dev.index or 0)
        return pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


def calibrate_hardware(device: str = "cpu", name: str | None = None, repeats: int = _REPEATS) -> HardwareModel:
    """Measure this machine's ceilings on `device` ("cpu", "cuda", "cuda:N") and return them as a
    hardware model whose values are marked measured. Unknown or unavailable device: `HardwareError`."""
    import torch

    dev = torch_device(device)
    when = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    notes: dict[str, str] = {}
    peaks: dict[str, float] = {}
    if dev.type == "cuda":
        label = torch.cuda.get_device_name(dev)
        kind = "gpu"
        old_precision = torch.get_float32_matmul_precision()
        try:
            for key, dtype, tf32 in (
                ("fp32", torch.float32, False),
                ("tf32", torch.float32, True),
                ("fp16", torch.float16, False),
                ("bf16", torch.bfloat16, False),
            ):
                # "highest" keeps fp32 products in fp32; "high" lets them use TF32 tensor cores
                torch.set_float32_matmul_precision("high" if tf32 else "highest")
                m = measure_matmul_flops_per_s(dev, dtype, repeats)
                peaks[key] = m.value
                notes[f"peak_flops_per_s.{key}"] = f"measured: {m.what}" + (" with TF32 allowed" if tf32 else "")
        finally:
            torch.set_float32_matmul_precision(old_precision)
        power = _gpu_power_w(dev)
        if power is not None:
            notes["power_w"] = "NVML enforced power limit (read, not changed)"
    else:
        label = f"{cpu_model()} ({torch.get_num_threads()} torch threads)"
        kind = "cpu"
        m = measure_matmul_flops_per_s(dev, torch.float32, repeats)
        peaks["fp32"] = m.value
        notes["peak_flops_per_s.fp32"] = f"measured: {m.what} ({torch.get_num_threads()} threads)"
        power = None
    copy = measure_copy_bytes_per_s(dev, repeats=repeats)
    notes["memory_bandwidth_bytes_per_s"] = f"measured: {copy.what}"
    launch = measure_launch_overhead_s(dev, repeats=repeats)
    notes["launch_overhead_s"] = f"measured: {launch.what}"
    notes["memory_capacity_bytes"] = "total device memory" if kind == "gpu" else "physical memory (sysconf)"
    notes[""] = (
        f"Hardware model MEASURED by `na-toolkit hw calibrate` on {label}, {when}, torch {torch.__version__}.\n"
        "Peaks are achieved matrix-product rates and copy bandwidth, not datasheet figures."
    )
    default_name = "local-cpu" if kind == "cpu" else f"local-cuda{dev.index or 0}"
    return HardwareModel(
        name=name or default_name,
        kind=kind,
        peak_flops_per_s=peaks,
        memory_bandwidth_bytes_per_s=copy.value,
        memory_capacity_bytes=_memory_capacity_bytes(dev),
        launch_overhead_s=launch.value,
        power_w=power,
        description=f"measured: {label}",
        values_are="measured",
        notes=notes,
    )
