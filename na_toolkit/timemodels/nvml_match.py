"""Which NVML device a CUDA device is. CUDA numbers the GPUs a process may see (`CUDA_VISIBLE_DEVICES`), NVML
numbers every GPU of the machine: with `CUDA_VISIBLE_DEVICES=2`, `cuda:0` is NVML's GPU 2, and a snapshot of
NVML's GPU 0 would file another GPU's clocks, power and energy under the measured one. The UUID does not
change with the numbering: `cuda_uuid` asks torch for it (the CUDA runtime's numbering, the one ONNX Runtime's
`device_id` uses too); where torch sees no CUDA, `nvml_index` reads `CUDA_VISIBLE_DEVICES` (entries that are
NVML indices; a UUID entry cannot be matched by index, so it gives None, and no telemetry is better than
another GPU's).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .nvml import GpuTelemetry, Nvml


def cuda_uuid(index: int) -> str | None:
    """NVML's UUID ("GPU-...") of CUDA device `index` as torch numbers it; None where torch sees no such
    device or does not say."""
    try:
        import torch

        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return None
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except Exception:  # a torch without CUDA support, a driver error: no UUID to go by
        return None
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def nvml_index(index: int) -> int | None:
    """NVML's index of CUDA device `index` from `CUDA_VISIBLE_DEVICES` (unset: the same index); None where
    the variable names it otherwise than by an index (a UUID, a MIG instance) or holds fewer devices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return index
    entries = [e.strip() for e in visible.split(",")]
    if index >= len(entries) or not entries[index].isdigit():
        return None
    return int(entries[index])


def nvml_target(index: int) -> tuple[int | None, str | None]:
    """(NVML index, UUID) of CUDA device `index` for `Nvml.snapshot`: the UUID where torch gives it, and the
    index `CUDA_VISIBLE_DEVICES` gives (None, None: it cannot be told which NVML device it is)."""
    return nvml_index(index), cuda_uuid(index)


def snapshot_of(nv: Nvml, cuda_index: int) -> GpuTelemetry | None:
    """`nv`'s snapshot of the NVML device that CUDA device `cuda_index` is; None where NVML is unavailable or
    it cannot be told which NVML device that is."""
    index, uuid = nvml_target(cuda_index)
    if not nv.available or (index is None and uuid is None):
        return None
    return nv.snapshot(cuda_index if index is None else index, uuid)
