"""Local devices: device strings ("cpu", "cuda", "cuda:N", parsed by the one parser,
`na_toolkit.machine.parse_device`), whether this machine has the device, and its exact description.

Measured time models, the profiler and `hw calibrate` all name a local device this way; hardware models
(`hwmodels/*.toml`) and device profiles (`profiles/*.json`) are other things, named in the hardware
registry, and are never parsed here.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from ..errors import HardwareError
from ..machine import DEVICE_FORMS, LocalDevice, cpu_model, gpu_names, parse_device

__all__ = [
    "DEVICE_FORMS",
    "LocalDevice",
    "describe_device",
    "describe_local_device",
    "devices_here",
    "parse_device",
    "torch_device",
]


def devices_here() -> list[str]:
    """The devices this machine offers: the CPU and each NVIDIA GPU NVML sees (cheap: no torch import)."""
    return ["cpu"] + [f"cuda:{i}" for i in range(len(gpu_names()))]


def torch_device(device: str) -> Any:
    """The `torch.device` for a local device string, checked against this machine: an unknown form, or
    CUDA where there is none, is a `HardwareError` listing the devices this machine has. A malformed
    name fails before torch is imported."""
    try:
        spec = parse_device(device)
    except HardwareError:
        raise HardwareError(f"unknown device {device!r}; known devices: {', '.join(devices_here())}") from None
    if spec.is_cuda and devices_here() == ["cpu"]:
        # NVML sees no NVIDIA GPU: say so without the seconds a torch import takes.
        raise HardwareError(
            f"device {device!r}: CUDA is not available here (NVML finds no NVIDIA GPU); known devices: cpu"
        )
    import torch

    if not spec.is_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise HardwareError(
            f"device {device!r}: CUDA is not available here (torch.cuda.is_available() is False); known devices: cpu"
        )
    if spec.index >= torch.cuda.device_count():
        known = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        raise HardwareError(f"device {device!r}: no such CUDA device; known devices: {', '.join(known)}")
    return torch.device("cuda", spec.index)


def describe_device(device: str | LocalDevice) -> str:
    """The exact name of a local device: the CPU model, or the GPU's name (torch, else NVML)."""
    spec = parse_device(device)
    if not spec.is_cuda:
        return cpu_model()
    try:
        import torch

        if torch.cuda.is_available() and spec.index < torch.cuda.device_count():
            return str(torch.cuda.get_device_name(spec.index))
    except Exception:
        pass
    from .nvml import Nvml
    from .nvml_match import snapshot_of

    with Nvml() as nv:
        snap = snapshot_of(nv, spec.index)
        return snap.name if snap is not None else f"cuda:{spec.index} (unknown GPU)"


def describe_local_device(device: str | LocalDevice) -> dict[str, Any]:
    """Exact description of a local device for a profile: CPU model and core count, and the GPU (name,
    driver, memory, power limit)."""
    from .nvml import Nvml
    from .nvml_match import snapshot_of

    spec = parse_device(device)
    out: dict[str, Any] = {
        "device": str(spec),
        "kind": spec.kind,
        "name": describe_device(spec),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
    }
    if spec.is_cuda:
        with Nvml() as nv:
            snap = snapshot_of(nv, spec.index)
            out["gpu"] = (
                None
                if snap is None
                else {
                    "name": snap.name,
                    "uuid": snap.uuid,
                    "driver_version": snap.driver_version,
                    "memory_total_bytes": snap.memory_total_bytes,
                    "power_limit_w": snap.power_limit_w,
                }
            )
    return out
