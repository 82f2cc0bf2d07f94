"""Machine description attached to every benchmark result: CPU, cores, GPU, library versions, date."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees ([] where there is no driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        return [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def machine_info() -> dict[str, Any]:
    libs = {d: _version(d) for d in ("na-toolkit", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "scikit-learn", "numpy", "pluggy")}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu_names(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {k: v for k, v in libs.items() if v is not None},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
