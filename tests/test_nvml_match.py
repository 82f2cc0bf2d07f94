"""Which NVML device a CUDA device is (timemodels/nvml_match.py): CUDA_VISIBLE_DEVICES renumbers the GPUs a
process sees, NVML does not, so telemetry by the CUDA index alone read another GPU. GPU parts skip without
NVML."""

from __future__ import annotations

import pytest

from na_toolkit.timemodels.nvml import Nvml
from na_toolkit.timemodels.nvml_match import cuda_uuid, nvml_index, snapshot_of


def test_the_nvml_index_of_a_cuda_device_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert nvml_index(0) == 0 and nvml_index(3) == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert nvml_index(0) == 2 and nvml_index(1) == 5
    assert nvml_index(2) is None  # the process sees two GPUs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f2a")  # by UUID: not an index to go by
    assert nvml_index(0) is None


def test_without_a_gpu_there_is_no_uuid_and_no_snapshot():
    with Nvml() as nv:
        if nv.available:
            pytest.skip("this machine has NVML")
        assert snapshot_of(nv, 0) is None
    import torch

    if not torch.cuda.is_available():
        assert cuda_uuid(0) is None


def test_a_snapshot_of_a_cuda_device_is_the_gpu_torch_calls_it():
    import torch

    with Nvml() as nv:
        if not (nv.available and torch.cuda.is_available()):
            pytest.skip("needs an NVIDIA GPU with CUDA and NVML")
        snap = snapshot_of(nv, 0)
    assert snap is not None and snap.uuid == cuda_uuid(0)
    assert snap.name == torch.cuda.get_device_name(0)
