"""The `torch` time model: the torch build of the IR on a CPU or a CUDA GPU, timed with the measurement
protocol of measure.py, for inference AND for one training step (forward + backward + optimizer step), so
training time is measured, not inferred.

On CUDA a sample is timed with CUDA events recorded on the current stream around the calls, followed by an
event synchronisation (wall clocks would time the launch, not the kernels); every GPU measurement carries
NVML telemetry before/after and the energy of the timed calls from NVML's counter. Peak memory on CUDA is
`torch.cuda.max_memory_allocated` over the measured calls; on a CPU it is the analytic figure.

CPU threads: `torch.set_num_threads(intra_op_threads)` while measuring (default 1, restored afterwards).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from pydantic import Field

from ..errors import TimeModelError
from ..ir.architecture import Architecture
from .base import TimeEstimate
from .measure import TIMERS, Measurement, MeasureSettings, library_versions, measure
from .measure_noise import contention_warning
from .measured import MeasuredTimeModel, analytic_peak_memory_bytes, settings_from
from .nvml import Nvml, TelemetryRecord, energy_between
from .nvml_match import snapshot_of


def cuda_event_timer(fn, calls: int) -> float:
    """Seconds of `calls` calls between two CUDA events on the current stream."""
    import torch

    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


class TorchTimeModel(MeasuredTimeModel):
    name = "torch"
    description = "measured with the torch build on CPU or CUDA (CUDA events, NVML), inference and a training step"
    runtime = "torch"
    measures_gpu_memory = True  # torch.cuda.max_memory_allocated

    OPTIONS = {
        **MeasuredTimeModel.OPTIONS,
        "train_settings": None,
        "measure_training": True,
        "optimizer": "sgd",
        "learning_rate": 0.01,
    }

    class Options(MeasuredTimeModel.Options):
        clock: Literal["auto", "wall", "thread_cpu", "cuda_events"] = Field(
            "auto", description='"auto": CUDA events on a GPU, thread_cpu with one CPU thread, else wall'
        )
        intra_op_threads: int = Field(1, ge=1, le=1_024, description="torch CPU threads")
        train_settings: dict[str, Any] | None = Field(None, description="training-step protocol (default: settings)")
        measure_training: bool = Field(True, description="also time a training step (forward, backward, update)")
        optimizer: Literal["sgd", "adam"] = Field("sgd", description="optimizer of the timed training step")
        learning_rate: float = Field(0.01, gt=0, description="learning rate of the timed training step")

    def __init__(self, device: str = "cpu", cache: Any = None, **options: Any):
        super().__init__(device=device, cache=cache, **options)
        opts = self.options
        if opts["optimizer"] not in ("sgd", "adam"):
            raise TimeModelError(f"optimizer must be 'sgd' or 'adam', got {opts['optimizer']!r}")
        if not isinstance(opts["intra_op_threads"], int) or opts["intra_op_threads"] < 1:
            raise TimeModelError(f"intra_op_threads must be an int >= 1, got {opts['intra_op_threads']!r}")
        self.train_settings: MeasureSettings = settings_from(opts["train_settings"] or self.settings)
        self.intra_op_threads = opts["intra_op_threads"]
        self.measure_training = bool(opts["measure_training"])
        self.optimizer = opts["optimizer"]
        self.learning_rate = float(opts["learning_rate"])
        if self.spec.is_cuda:
            self._check_cuda()
        self.clock = self._choose_clock(opts["clock"])

    def _choose_clock(self, clock: str) -> str:
        if self.spec.is_cuda:
            if clock not in ("auto", "cuda_events"):
                raise TimeModelError(f"on {self.device!r} the clock is CUDA events ('auto'), got {clock!r}")
            return "cuda_events"
        if clock == "auto":
            return "thread_cpu" if self.intra_op_threads == 1 else "wall"
        if clock not in TIMERS:
            raise TimeModelError(f"clock must be 'auto' or one of {sorted(TIMERS)}, got {clock!r}")
        if clock == "thread_cpu" and self.intra_op_threads != 1:
            raise TimeModelError("clock 'thread_cpu' needs intra_op_threads=1 (it times the calling thread only)")
        return clock

    def _check_cuda(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise TimeModelError(
                f"device {self.device!r}: torch {torch.__version__} sees no CUDA GPU (a CPU-only build or no driver); "
                "use device 'cpu'"
            )
        if self.spec.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise TimeModelError(f"device {self.device!r}: torch sees {count} GPU(s), cuda:0..cuda:{count - 1}")

    def cache_settings(self) -> dict[str, Any]:
        return {
            "intra_op_threads": self.intra_op_threads,
            "measure": self.settings.to_json(),
            "train_measure": self.train_settings.to_json() if self.measure_training else None,
            "optimizer": self.optimizer,
            "seed": self.seed,
            "clock": self.clock,
            "statistic": self.statistic,
            "versions": library_versions("torch"),
        }

    def context(self, batch_size: int, phase: str) -> dict[str, Any]:
        import torch

        return {
            "runtime": self.runtime,
            "phase": phase,
            "device": str(self.spec),
            "device_name": self.device_description,
            "batch_size": batch_size,
            "intra_op_threads": self.intra_op_threads if not self.spec.is_cuda else None,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if self.spec.is_cuda else None,
            "versions": library_versions("torch", "numpy"),
        }

    # ---- the callables that are timed ---------------------------------------------------------------
    def _build(self, arch: Architecture, batch_size: int):
        import torch

        dev = torch.device(str(self.spec))
        try:
            model = arch.to_torch(seed=self.seed).to(dev)
        except Exception as exc:
            raise TimeModelError(
                f"torch cannot build architecture {arch.hash} ({arch.name or 'unnamed'}): {exc}"
            ) from None
        gen = torch.Generator().manual_seed(self.seed)
        x = torch.randn((batch_size, *arch.input_shape), generator=gen).to(dev)
        return model, x

    def _inference_fn(self, model, x):
        import torch

        model.eval()

        def run():
            with torch.inference_mode():
                return model(x)

        return run

    def _train_fn(self, model, x, arch: Architecture):
        import torch
        import torch.nn.functional as F

        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return None
        opt = (
            torch.optim.SGD(params, lr=self.learning_rate, momentum=0.9)
            if self.optimizer == "sgd"
            else torch.optim.Adam(params, lr=self.learning_rate)
        )
        out_shape = arch.output_shape
        classes = out_shape[0] if len(out_shape) == 1 else None
        gen = torch.Generator().manual_seed(self.seed + 1)
        target = (
            torch.randint(0, classes, (x.shape[0],), generator=gen).to(x.device)
            if classes is not None
            else torch.zeros((x.shape[0], *out_shape), device=x.device)
        )

        def step():
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, target) if classes is not None else F.mse_loss(out, target)
            loss.backward()
            opt.step()

        return step

    def _timed(
        self, fn, settings: MeasureSettings, ctx: dict[str, Any], nv: Nvml
    ) -> tuple[Measurement, TelemetryRecord]:
        if not self.spec.is_cuda:
            return measure(fn, settings, TIMERS[self.clock], self.clock, ctx), TelemetryRecord(
                nv.status() if not nv.available else "not a GPU measurement"
            )
        before = snapshot_of(nv, self.spec.index)  # by UUID: CUDA_VISIBLE_DEVICES renumbers
        m = measure(fn, settings, timer=cuda_event_timer, timer_name="cuda_events", context=ctx)
        after = snapshot_of(nv, self.spec.index)
        status = "ok" if nv.available else nv.status()
        return m, TelemetryRecord(
            status, before, after, energy_between(before, after), m.runs * m.calls_per_run, m.median_ms
        )

    def train_step_source(self) -> str | None:
        if not self.measure_training:
            return None
        return f"measured: a torch training step on {self.spec} (forward, loss, backward, {self.optimizer} update)"

    def _time_train_step(
        self, model, x, arch: Architecture, batch_size: int, nv: Nvml, details: dict[str, Any], warnings: list[str]
    ) -> float | None:
        """The statistic of a measured training step in ms (details and warnings filled in), or None with a
        warning when the step cannot run."""
        import torch

        step = self._train_fn(model, x, arch)
        if step is None:
            warnings.append("no trainable parameters: training step not measured")
            return None
        try:
            tm, ttel = self._timed(step, self.train_settings, self.context(batch_size, "train_step"), nv)
        except (RuntimeError, ValueError) as exc:
            # e.g. batch norm in training mode on one value per channel (batch 1, 1x1 maps)
            warnings.append(f"training step failed at batch {batch_size}: {exc}")
            return None
        details.update(train_measurement=tm.to_json(), train_nvml=ttel.to_json())
        if self.spec.is_cuda:
            details["train_peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(self.spec.index))
        return float(getattr(tm, f"{self.statistic}_ms"))

    def measure_train_step(self, arch: Architecture, batch_size: int) -> tuple[float | None, dict[str, Any], list[str]]:
        """Only a training step, measured (no inference): its time in ms (None when it cannot run), the
        measurement's details and the warnings. What the onnxruntime model uses for its training step."""
        import torch

        details: dict[str, Any] = {}
        warnings: list[str] = []
        old_threads = torch.get_num_threads()
        if not self.spec.is_cuda:
            torch.set_num_threads(self.intra_op_threads)
        on_device = torch.cuda.device(self.spec.index) if self.spec.is_cuda else contextlib.nullcontext()
        try:
            with on_device, Nvml() as nv:
                model, x = self._build(arch, batch_size)
                ms = self._time_train_step(model, x, arch, batch_size, nv, details, warnings)
        finally:
            if not self.spec.is_cuda:
                torch.set_num_threads(old_threads)
        return ms, details, warnings

    def _measure(self, arch: Architecture, batch_size: int) -> TimeEstimate:
        import torch

        warnings: list[str] = []
        details: dict[str, Any] = {"arch_hash": arch.hash}
        old_threads = torch.get_num_threads()
        if not self.spec.is_cuda:
            torch.set_num_threads(self.intra_op_threads)
        # CUDA events are recorded on the current stream of the current device: make it ours
        on_device = torch.cuda.device(self.spec.index) if self.spec.is_cuda else contextlib.nullcontext()
        try:
            with on_device, Nvml() as nv:
                model, x = self._build(arch, batch_size)
                if self.spec.is_cuda:
                    torch.cuda.synchronize(self.spec.index)
                    torch.cuda.reset_peak_memory_stats(self.spec.index)
                infer = self._inference_fn(model, x)
                try:
                    m, tel = self._timed(infer, self.settings, self.context(batch_size, "inference"), nv)
                except RuntimeError as exc:  # e.g. CUDA out of memory
                    raise TimeModelError(
                        f"torch failed to run architecture {arch.hash} on {self.spec}: {exc}"
                    ) from None
                peak = (
                    int(torch.cuda.max_memory_allocated(self.spec.index))
                    if self.spec.is_cuda
                    else analytic_peak_memory_bytes(arch, batch_size)
                )
                details.update(
                    measurement=m.to_json(),
                    nvml=tel.to_json(),
                    peak_memory_source="cuda allocator" if self.spec.is_cuda else "analytic",
                )
                train_ms = None
                if self.measure_training:
                    train_ms = self._time_train_step(model, x, arch, batch_size, nv, details, warnings)
        finally:
            if not self.spec.is_cuda:
                torch.set_num_threads(old_threads)
        if self.spec.is_cuda and tel.status != "ok":
            warnings.append(f"{tel.status}; no GPU telemetry or energy recorded")
        if not m.stable:
            warnings.append(
                f"median not stable within {self.settings.rel_tolerance:.0%} after {m.runs} runs (cv {m.cv:.3f})"
            )
        contended = contention_warning(m)
        if contended:
            warnings.append(contended)
        return TimeEstimate(
            time_model=self.name,
            device=str(self.spec),
            batch_size=batch_size,
            latency_ms=getattr(m, f"{self.statistic}_ms"),
            train_step_ms=train_ms,
            peak_memory_bytes=peak,
            energy_mj=tel.energy_per_call_mj,
            latency_p10_ms=m.p10_ms,
            latency_p90_ms=m.p90_ms,
            latency_iqr_ms=m.iqr_ms,
            warnings=tuple(warnings),
            details=details,
        )
