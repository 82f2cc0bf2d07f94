"""The roofline time model: an analytic estimate from a hardware model, without running anything.

Each layer (node) with work to do is one kernel: its time is max(FLOPs / peak FLOP/s, bytes / bandwidth) plus
the device's launch overhead (Williams, Waterman, Patterson, "Roofline", CACM 2009). A training step is the
forward pass, a backward pass built from the same per-layer costs, and an optimizer update. The assumptions
are listed in docs/time_models.md ("Roofline").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from .. import validation
from ..errors import HardwareError, TimeModelError
from ..ir.architecture import Architecture
from ..ir.layers import BYTES_PER_ELEMENT, LayerCost, numel
from .base import FigureSource, TimeEstimate, TimeModel
from .hwmodel import DTYPE_BYTES, HardwareModel, load_hardware_model
from .training import TrainCalibration

if TYPE_CHECKING:
    from typing import Self

    from ..registry import Registry
    from ..toolkit import Toolkit
    from .hardware import HardwareSource

#: device names the measured time models use, mapped to the hardware model the roofline reads for them
DEVICE_ALIASES = {"cpu": "x86-cpu"}
#: optimizer state kept per parameter (fp32 copies): plain SGD none, SGD with momentum one buffer, Adam two
OPTIMIZER_STATE_PER_PARAM = {"sgd": 0, "momentum": 1, "adam": 2}
#: FLOPs per parameter of one update (momentum: m = mu*m + g; w -= lr*m; Adam: moments, bias correction, sqrt)
OPTIMIZER_FLOPS_PER_PARAM = {"sgd": 2, "momentum": 4, "adam": 12}
#: bytes of optimizer state and master weights per parameter: fp32 whatever the compute dtype (mixed precision)
MASTER_BYTES_PER_PARAM = 4
CEILINGS = ("measured", "datasheet")


@dataclass(frozen=True)
class KernelTime:
    """The roofline of one kernel: a layer's forward, backward or update."""

    node: str
    layer_type: str
    flops: float
    bytes: float
    launches: int
    compute_s: float
    memory_s: float
    launch_s: float

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.launch_s

    @property
    def bound(self) -> str:
        """'compute' when the FLOPs take longer than the bytes, else 'memory'."""
        return "compute" if self.compute_s > self.memory_s else "memory"

    @property
    def intensity_flops_per_byte(self) -> float | None:
        return self.flops / self.bytes if self.bytes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "layer_type": self.layer_type,
            "flops": self.flops,
            "bytes": self.bytes,
            "launches": self.launches,
            "compute_s": self.compute_s,
            "memory_s": self.memory_s,
            "launch_s": self.launch_s,
            "time_s": self.time_s,
            "bound": self.bound,
            "intensity_flops_per_byte": self.intensity_flops_per_byte,
        }


def kernel_time(
    node: str,
    layer_type: str,
    flops: float,
    bytes_: float,
    launches: int,
    flops_per_s: float,
    bytes_per_s: float,
    launch_overhead_s: float,
) -> KernelTime:
    """The roofline of one kernel (pure): compute time, memory time and launch overhead kept apart."""
    return KernelTime(
        node,
        layer_type,
        flops,
        bytes_,
        launches,
        flops / flops_per_s,
        bytes_ / bytes_per_s,
        launches * launch_overhead_s,
    )


def _summary(kernels: list[KernelTime]) -> dict[str, Any]:
    return {
        "time_s": sum(k.time_s for k in kernels),
        "compute_s": sum(k.compute_s for k in kernels),
        "memory_s": sum(k.memory_s for k in kernels),
        "launch_s": sum(k.launch_s for k in kernels),
        "launches": sum(k.launches for k in kernels),
        "flops": sum(k.flops for k in kernels),
        "bytes": sum(k.bytes for k in kernels),
        "compute_bound_kernels": sum(k.bound == "compute" for k in kernels),
        "memory_bound_kernels": sum(k.bound == "memory" for k in kernels),
        **latency_by_bound(kernels),
    }


def latency_by_bound(kernels: list[KernelTime]) -> dict[str, Any]:
    """Where the time of `kernels` goes, by what bounds it: `compute_bound_s` (the roofline time of the
    compute-bound kernels), `memory_bound_s` (of the memory-bound ones), `launch_bound_s` (every launch
    overhead); they sum to the total. `bound` names the largest of the three."""
    parts = {
        "compute": sum(k.compute_s for k in kernels if k.bound == "compute"),
        "memory": sum(k.memory_s for k in kernels if k.bound == "memory"),
        "launch": sum(k.launch_s for k in kernels),
    }
    return {**{f"{name}_bound_s": s for name, s in parts.items()}, "bound": max(parts, key=lambda n: parts[n])}


def _check_ceilings(hw: HardwareModel, dtype: str, measured: bool) -> None:
    """The figures the roofline divides by and adds are usable: a `HardwareModel` built in Python (not read
    from a file, which is validated) with a zero rate would crash every estimate, a negative or NaN one give
    negative or NaN latencies. HardwareError naming the key of the value."""
    ceilings = "measured_ceilings."
    flops_key = f"{ceilings}flops_per_s" if measured and dtype in hw.measured_flops_per_s else "peak_flops_per_s"
    bytes_key = "memory_bandwidth_bytes_per_s"
    if measured and hw.measured_memory_bandwidth_bytes_per_s is not None:
        bytes_key = ceilings + bytes_key
    figures = (
        (f"{flops_key}.{dtype}", hw.flops_per_s(dtype, prefer_measured=measured), False),
        (bytes_key, hw.bandwidth_bytes_per_s(prefer_measured=measured), False),
        ("launch_overhead_s", hw.launch_overhead_s, True),
    )
    for key, value, zero_ok in figures:
        if not (isinstance(value, int | float) and math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
            need = ">= 0" if zero_ok else "> 0"
            raise HardwareError(f"hardware model {hw.name!r}: {key} must be a finite number {need}, got {value!r}")


class RooflineTimeModel(TimeModel):
    """Latency, training-step time, peak memory and energy from a hardware model (`hwmodels/*.toml`).

    device: a hardware model name (`na-toolkit hw list`, looked up in `hardware_registry`: the toolkit's
    hardware registry, which `from_toolkit` passes), a path to a TOML file, or a `HardwareModel`; "cpu"
    means the generic `x86-cpu` model. dtype: the compute dtype (its peak must be in the model; bytes
    scale from the IR's fp32). ceilings: "measured" uses a model's measured ceilings where it has them,
    "datasheet" only the peaks. optimizer: "sgd", "momentum" (default) or "adam" for the training step.
    train_calibration: a `TrainCalibration` (or its table: scale, launch_overhead_s, step_overhead_s) fitted to
    the device from measured training steps (`training.fit_train_calibration`); None: the plain roofline.
    """

    name = "roofline"
    description = "analytic: per layer max(FLOPs/peak, bytes/bandwidth) + launch overhead, from a hardware model"
    measures = False

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        device: str = Field("x86-cpu", description='hardware model name or TOML path ("cpu": x86-cpu)')
        dtype: Literal[tuple(DTYPE_BYTES)] = Field(  # type: ignore[valid-type]
            "fp32", description="compute dtype (its peak must be in the model)"
        )
        ceilings: Literal[CEILINGS] = Field(  # type: ignore[valid-type]
            "measured", description='"measured": a model\'s measured ceilings where it has them, "datasheet": peaks'
        )
        optimizer: Literal[tuple(OPTIMIZER_STATE_PER_PARAM)] = Field(  # type: ignore[valid-type]
            "momentum", description="optimizer of the training step"
        )
        train_calibration: dict[str, Any] | None = Field(
            None, description="training step fitted to the device: {scale, launch_overhead_s, step_overhead_s}"
        )

    def __init__(
        self,
        device: str | HardwareModel = "x86-cpu",
        dtype: str = "fp32",
        ceilings: str = "measured",
        optimizer: str = "momentum",
        train_calibration: TrainCalibration | dict[str, Any] | None = None,
        *,
        hardware_registry: Registry[HardwareSource] | None = None,
        **options: Any,
    ):
        if options:
            known = ("device", "dtype", "ceilings", "optimizer", "train_calibration")
            hint = validation.did_you_mean(options, known)
            raise TimeModelError(
                f"roofline: unknown option(s) {', '.join(sorted(options))}.{hint} Known: {', '.join(known)}"
            )
        name = DEVICE_ALIASES.get(device, device) if isinstance(device, str) else device
        hardware_model = load_hardware_model(name, hardware_registry)
        super().__init__(device=hardware_model.name)
        if dtype not in DTYPE_BYTES:
            raise TimeModelError(f"roofline: unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
        if ceilings not in CEILINGS:
            raise TimeModelError(f"roofline: ceilings must be one of {', '.join(CEILINGS)}, got {ceilings!r}")
        if optimizer not in OPTIMIZER_STATE_PER_PARAM:
            raise TimeModelError(
                f"roofline: unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZER_STATE_PER_PARAM)}"
            )
        self.hardware = hardware_model
        self.dtype = dtype
        self.ceilings = ceilings
        self.optimizer = optimizer
        self.train_calibration = TrainCalibration.from_json(train_calibration)
        prefer = ceilings == "measured"
        _check_ceilings(hardware_model, dtype, prefer)
        self.flops_per_s = hardware_model.flops_per_s(dtype, prefer_measured=prefer)  # raises when dtype has no peak
        self.bytes_per_s = hardware_model.bandwidth_bytes_per_s(prefer_measured=prefer)
        # The IR counts fp32 elements; a narrower dtype moves proportionally fewer bytes.
        self.byte_scale = DTYPE_BYTES[dtype] / BYTES_PER_ELEMENT

    @classmethod
    def from_toolkit(cls, toolkit: Toolkit, **options: Any) -> Self:
        """Hardware model names are looked up in `toolkit.hardware`."""
        return cls(hardware_registry=toolkit.hardware, **options)

    def memory_capacity_bytes(self) -> int | None:
        return self.hardware.memory_capacity_bytes

    def gives(self, figure: str) -> bool | None:
        """Peak memory always; energy when the hardware model has a power (energy = power x latency)."""
        if figure == "peak_memory_bytes":
            return True
        if figure == "energy_mj":
            return self.hardware.power_w is not None
        return super().gives(figure)

    def figure_source(self, figure: str) -> FigureSource | None:
        """As every estimating model's, with the compute dtype the estimate assumed (an int8 figure and an
        fp32 one of the same network differ several-fold)."""
        src = super().figure_source(figure)
        if src is None or figure == "train_time_s":
            return src
        return replace(src, how=f"{src.how}, {self.dtype}")

    def why_not_given(self, figure: str) -> str | None:
        if figure == "energy_mj" and self.hardware.power_w is None:
            where = f" to {str(self.hardware.source)!r}" if self.hardware.source else ""
            return f"its hardware model {self.hardware.name!r} has no power_w: add power_w = WATTS{where}"
        return None

    def _kernel(self, node: str, layer_type: str, flops: float, bytes_: float, launches: int) -> KernelTime:
        return kernel_time(
            node,
            layer_type,
            flops,
            bytes_,
            launches,
            self.flops_per_s,
            self.bytes_per_s,
            self.hardware.launch_overhead_s,
        )

    # ---- per-phase kernels ------------------------------------------------------------------------------
    def _forward_bytes(self, cost: LayerCost, batch_size: int) -> float:
        # Weights are read once per batch; activations scale with it.
        return (cost.weight_bytes + batch_size * (cost.input_bytes + cost.output_bytes)) * self.byte_scale

    def forward_kernels(self, arch: Architecture, batch_size: int = 1) -> list[KernelTime]:
        """One kernel per layer with work; layers with neither FLOPs nor bytes (views, identity) are free."""
        out = []
        for node in arch.nodes:
            cost = arch.cost.per_node[node.id]
            flops, bytes_ = cost.flops * batch_size, self._forward_bytes(cost, batch_size)
            if flops or bytes_:
                out.append(self._kernel(node.id, node.type, flops, bytes_, 1))
        return out

    def backward_kernels(self, arch: Architecture, batch_size: int = 1) -> list[KernelTime]:
        """A layer with weights computes the input gradient and the weight gradient: 2x its forward FLOPs and
        bytes in 2 kernels. A layer without weights computes the input gradient only: 1x in 1 kernel."""
        out = []
        for node in arch.nodes:
            cost = arch.cost.per_node[node.id]
            flops, bytes_ = cost.flops * batch_size, self._forward_bytes(cost, batch_size)
            if not (flops or bytes_):
                continue
            factor = 2 if cost.params else 1
            out.append(self._kernel(node.id, node.type, factor * flops, factor * bytes_, factor))
        return out

    def optimizer_kernels(self, arch: Architecture) -> list[KernelTime]:
        """One update kernel per layer with parameters: read weights, gradients and state, write weights and
        state (fp32 master copies)."""
        state = OPTIMIZER_STATE_PER_PARAM[self.optimizer]
        out = []
        for node in arch.nodes:
            params = arch.cost.per_node[node.id].params
            if params:
                bytes_ = params * MASTER_BYTES_PER_PARAM * (3 + 2 * state)
                flops = params * OPTIMIZER_FLOPS_PER_PARAM[self.optimizer]
                out.append(self._kernel(node.id, node.type, flops, bytes_, 1))
        return out

    def train_kernels(self, arch: Architecture, batch_size: int = 1) -> list[KernelTime]:
        """The kernels of one training step: forward, backward, optimizer update."""
        return (
            self.forward_kernels(arch, batch_size)
            + self.backward_kernels(arch, batch_size)
            + self.optimizer_kernels(arch)
        )

    def train_step_source(self) -> str | None:
        if self.train_calibration is None:
            return f"analytic: roofline of {self.hardware.name}, forward + backward (2x per weighted layer) + update"
        return (
            f"analytic: roofline of {self.hardware.name}, training step calibrated "
            f"({self.train_calibration.fitted_on or 'given'})"
        )

    # ---- memory -----------------------------------------------------------------------------------------
    def inference_memory_bytes(self, arch: Architecture, batch_size: int = 1) -> int:
        """Weights plus the largest set of live activations of one forward pass."""
        return int((arch.cost.weight_bytes + arch.peak_activation_bytes * batch_size) * self.byte_scale)

    def training_memory_bytes(self, arch: Architecture, batch_size: int = 1) -> int:
        """Weights, gradients, optimizer state, every activation kept for the backward pass, and the largest
        layer's input+output gradients as working space; below fp32, the fp32 master weights too."""
        cost = arch.cost
        kept = sum(c.output_bytes for c in cost.per_node.values())
        input_bytes = numel(arch.input_shape) * BYTES_PER_ELEMENT
        workspace = max((c.input_bytes + c.output_bytes for c in cost.per_node.values()), default=0)
        activations = (kept + input_bytes + workspace) * batch_size * self.byte_scale
        weights_and_grads = cost.weight_bytes * self.byte_scale + cost.params * DTYPE_BYTES[self.dtype]
        state = cost.params * MASTER_BYTES_PER_PARAM * OPTIMIZER_STATE_PER_PARAM[self.optimizer]
        # mixed precision keeps an fp32 master copy of the weights beside the narrower ones it computes with
        # (Micikevicius et al. 2018, arXiv:1710.03740), which the update reads and writes (optimizer_kernels)
        master = cost.params * MASTER_BYTES_PER_PARAM if DTYPE_BYTES[self.dtype] < MASTER_BYTES_PER_PARAM else 0
        return int(weights_and_grads + state + master + activations)

    # ---- the protocol -----------------------------------------------------------------------------------
    def estimate(self, arch: Architecture, batch_size: int = 1) -> TimeEstimate:
        self.check_request(arch, batch_size)
        hw = self.hardware
        forward = self.forward_kernels(arch, batch_size)
        backward = self.backward_kernels(arch, batch_size)
        update = self.optimizer_kernels(arch)
        fwd, bwd, upd = _summary(forward), _summary(backward), _summary(update)
        latency_s = fwd["time_s"]
        train_s = fwd["time_s"] + bwd["time_s"] + upd["time_s"]
        if self.train_calibration is not None:
            train_s = self.train_calibration.step_s(forward + backward + update, hw.launch_overhead_s)
        memory = self.inference_memory_bytes(arch, batch_size)
        train_memory = self.training_memory_bytes(arch, batch_size)
        warnings = []
        capacity_gib = hw.memory_capacity_bytes / 2**30
        if memory > hw.memory_capacity_bytes:
            warnings.append(
                f"{hw.name}: inference needs {memory / 2**30:.2f} GiB, more than the {capacity_gib:.2f} GiB it has"
            )
        if train_memory > hw.memory_capacity_bytes:
            warnings.append(
                f"{hw.name}: a training step needs {train_memory / 2**30:.2f} GiB, "
                f"more than the {capacity_gib:.2f} GiB it has"
            )
        # W x ms = mJ. The board power (TDP) is an upper bound on what the device draws.
        energy_mj = hw.power_w * latency_s * 1000.0 if hw.power_w is not None else None
        details: dict[str, Any] = {
            "hardware_model": hw.name,
            "hardware_source": str(hw.source) if hw.source else None,
            "values_are": hw.values_are,
            "dtype": self.dtype,
            "ceilings": self.ceilings,
            "optimizer": self.optimizer,
            "train_calibration": self.train_calibration.to_json() if self.train_calibration is not None else None,
            "flops_per_s": self.flops_per_s,
            "bytes_per_s": self.bytes_per_s,
            "launch_overhead_s": hw.launch_overhead_s,
            "ridge_point_flops_per_byte": self.flops_per_s / self.bytes_per_s,
            "forward": fwd,
            "backward": bwd,
            "optimizer_update": upd,
            "train_peak_memory_bytes": train_memory,
            "train_step_energy_mj": hw.power_w * train_s * 1000.0 if hw.power_w is not None else None,
            "layers": [k.to_dict() for k in forward],
        }
        return TimeEstimate(
            time_model=self.name,
            device=hw.name,
            batch_size=batch_size,
            latency_ms=latency_s * 1000.0,
            train_step_ms=train_s * 1000.0,
            peak_memory_bytes=memory,
            energy_mj=energy_mj,
            warnings=tuple(warnings),
            details=details,
        )
