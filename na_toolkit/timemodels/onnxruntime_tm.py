"""The `onnxruntime` time model: emit ONNX from the IR, run it with an execution provider, time it with the
measurement protocol (measure.py).

Providers: CPU everywhere; CUDA and TensorRT where the onnxruntime-gpu wheel is installed. Asking for a
provider that is not available is a `TimeModelError` listing the available ones. Without an explicit
provider the device decides (cuda:N -> CUDA provider); where that provider is missing it is a
`TimeModelError`, unless the option `allow_fallback` lets the model measure on the CPU provider, which it
then says on stderr and in every `TimeEstimate.warnings` (never a silent switch, docs/architecture.md).

Threads: intra-op threads default to 1 and inter-op to 1 with sequential execution. On a shared 2-core
machine a single pinned thread is what keeps repeated measurements of one network within a few percent;
more threads are an option (`intra_op_threads`) and are recorded with every measurement.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..errors import DeviceWarning, TimeModelError
from ..ir.architecture import Architecture
from .base import TimeEstimate
from .measure import TIMERS, library_versions, measure
from .measure_noise import contention_warning
from .measured import MeasuredTimeModel, analytic_peak_memory_bytes
from .nvml import Nvml, TelemetryRecord, energy_between
from .nvml_match import snapshot_of

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def onnxruntime_versions() -> dict[str, str]:
    """The version of the `onnxruntime` module that runs, and "onnxruntime-gpu" when that module is the GPU
    build's. Installed distributions are not enough: where both builds are installed (one ahead of the other
    on the path), both report a version, and the one that does not run once made a GPU profile name the CPU
    build's version."""
    return dict(_onnxruntime_versions())


@functools.cache
def _onnxruntime_versions() -> dict[str, str]:
    import importlib.metadata
    from pathlib import Path

    import onnxruntime as ort

    out = {"onnxruntime": str(ort.__version__)}
    try:
        gpu = importlib.metadata.distribution("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return out
    here = Path(ort.__file__).resolve()
    if Path(str(gpu.locate_file("onnxruntime/__init__.py"))).resolve() == here:
        out["onnxruntime-gpu"] = gpu.version
    return out


def resolve_provider(name: str) -> str:
    return PROVIDER_ALIASES.get(name.lower(), name)


class OnnxRuntimeTimeModel(MeasuredTimeModel):
    name = "onnxruntime"
    description = "measured with ONNX Runtime (CPU; CUDA/TensorRT with onnxruntime-gpu), docs/architecture.md protocol"
    runtime = "onnxruntime"

    OPTIONS = {
        **MeasuredTimeModel.OPTIONS,
        "provider": None,
        "inter_op_threads": 1,
        "graph_optimization": "all",
        "allow_fallback": False,
        "train_step": "none",
    }

    class Options(MeasuredTimeModel.Options):
        clock: Literal["auto", "wall", "thread_cpu"] = Field(
            "auto", description='"auto": thread_cpu with one thread on the CPU provider, else wall'
        )
        intra_op_threads: int = Field(
            1, ge=0, le=1_024, description="threads inside an operator (0: ONNX Runtime's default)"
        )
        provider: str | None = Field(None, description="execution provider: CPU, CUDA, TensorRT (default: by device)")
        inter_op_threads: int = Field(
            1, ge=0, le=1_024, description="threads across operators (0: ONNX Runtime's default)"
        )
        graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
            "all", description="ONNX Runtime's graph optimization level"
        )
        allow_fallback: bool = Field(
            False, description="measure on the CPU (with a warning) when a CUDA device has no CUDA provider here"
        )
        train_step: Literal["none", "torch"] = Field(
            "none", description='"torch": also measure a torch training step on the same device and threads'
        )

    def __init__(self, device: str = "cpu", cache: Any = None, **options: Any):
        super().__init__(device=device, cache=cache, **options)
        opts = self.options
        if opts["graph_optimization"] not in GRAPH_OPTIMIZATION:
            raise TimeModelError(
                f"graph_optimization must be one of {GRAPH_OPTIMIZATION}, got {opts['graph_optimization']!r}"
            )
        for key in ("intra_op_threads", "inter_op_threads"):
            if not isinstance(opts[key], int) or opts[key] < 0:
                raise TimeModelError(f"{key} must be an int >= 0 (0: ONNX Runtime's default), got {opts[key]!r}")
        self.intra_op_threads = opts["intra_op_threads"]
        self.inter_op_threads = opts["inter_op_threads"]
        self.graph_optimization = opts["graph_optimization"]
        if opts["train_step"] not in ("none", "torch"):
            raise TimeModelError(f"train_step must be 'none' or 'torch', got {opts['train_step']!r}")
        self.train_step = opts["train_step"]
        self.provider, self.fallback_warning = self._choose_provider(opts["provider"])
        self.clock = self._choose_clock(opts["clock"])

    # ---- provider ------------------------------------------------------------------------------------
    def _choose_provider(self, requested: str | None) -> tuple[str, str | None]:
        available = available_providers()
        if requested is not None:
            provider = resolve_provider(requested)
            if provider not in available:
                raise TimeModelError(
                    f"ONNX Runtime execution provider {requested!r} is not available here; available: "
                    f"{', '.join(available)} (CUDA/TensorRT need the onnxruntime-gpu wheel: make install ORT=gpu)"
                )
            if provider in GPU_PROVIDERS and not self.spec.is_cuda:
                raise TimeModelError(f"provider {provider} runs on a GPU; use device 'cuda:N', not {self.device!r}")
            if provider == "CPUExecutionProvider" and self.spec.is_cuda:
                raise TimeModelError(f"provider {provider} runs on the CPU; use device 'cpu', not {self.device!r}")
            return provider, None
        if not self.spec.is_cuda:
            return "CPUExecutionProvider", None
        if "CUDAExecutionProvider" in available:
            return "CUDAExecutionProvider", None
        if not self.options["allow_fallback"]:
            # measuring on the CPU and labelling it cuda would put wrong latencies under a GPU's budgets
            raise TimeModelError(
                f"device {self.device!r}: ONNX Runtime has no CUDA provider here (available: {', '.join(available)}); "
                "install onnxruntime-gpu (make install ORT=gpu), ask for device 'cpu', or set the time model's "
                "option allow_fallback = true to measure on the CPU instead"
            )
        message = (
            f"device {self.device!r}: ONNX Runtime has no CUDA provider here (available: {', '.join(available)}); "
            "measured on the CPU instead (allow_fallback = true). Install onnxruntime-gpu or ask for device 'cpu'"
        )
        warnings.warn(message, DeviceWarning, stacklevel=2)  # printed on stderr, not only stored
        return "CPUExecutionProvider", message

    def _choose_clock(self, clock: str) -> str:
        single_thread = not self.on_gpu and self.intra_op_threads == 1 and self.inter_op_threads == 1
        if clock == "auto":
            return "thread_cpu" if single_thread else "wall"
        if clock not in TIMERS:
            raise TimeModelError(f"clock must be 'auto' or one of {sorted(TIMERS)}, got {clock!r}")
        if clock == "thread_cpu" and not single_thread:
            raise TimeModelError(
                "clock 'thread_cpu' times only the calling thread: it needs the CPU provider with intra_op_threads=1 "
                "and inter_op_threads=1; use clock 'wall'"
            )
        return clock

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    def cache_settings(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "seed": self.seed,
            "clock": self.clock,
            "statistic": self.statistic,
            "measure": self.settings.to_json(),
            "train_step": self.train_step,
            "versions": onnxruntime_versions(),
        }

    # ---- training step -------------------------------------------------------------------------------
    def train_step_source(self) -> str | None:
        """ONNX Runtime runs inference only (training is the separate onnxruntime-training package): with
        `train_step = "torch"` the training step is a torch training step measured on the same device."""
        if self.train_step == "none":
            return None
        return f"measured: a torch training step on {self._train_device()} (ONNX Runtime measures inference only)"

    def _train_device(self) -> str:
        return str(self.spec) if self.on_gpu else "cpu"

    def _measure_train_step(
        self, arch: Architecture, batch_size: int
    ) -> tuple[float | None, dict[str, Any], list[str]]:
        from .torch_tm import TorchTimeModel

        clock = self.clock if not self.on_gpu and self.clock == "wall" else "auto"
        torch_model = TorchTimeModel(
            device=self._train_device(),
            settings=self.settings.to_json(),
            seed=self.seed,
            statistic=self.statistic,
            clock=clock,
            intra_op_threads=max(1, self.intra_op_threads),
        )
        return torch_model.measure_train_step(arch, batch_size)

    # ---- session -------------------------------------------------------------------------------------
    def session(self, arch: Architecture, batch_size: int):
        """An InferenceSession of `arch` with this model's provider and threads (TimeModelError if ONNX
        Runtime rejects the model)."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = self.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        so.log_severity_level = 3
        # and the process-wide logger, which ONNX Runtime writes before a session's own: on a GPU it printed
        # "No registered plugin EP device found for 'CUDAExecutionProvider'" (a warning) for every session,
        # hundreds of lines per profile; errors still print, and failures still raise
        ort.set_default_logger_severity(3)
        providers: list[Any]
        if self.provider == "CPUExecutionProvider":
            providers = ["CPUExecutionProvider"]
        else:
            opts = {"device_id": self.spec.index}
            chain = [self.provider] + (
                ["CUDAExecutionProvider"] if self.provider == "TensorrtExecutionProvider" else []
            )
            providers = [(p, opts) for p in chain] + ["CPUExecutionProvider"]
        try:
            model = arch.to_onnx(seed=self.seed, batch_size=batch_size)
            sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
        except Exception as exc:
            raise TimeModelError(
                f"ONNX Runtime ({self.provider}) rejected architecture {arch.hash} ({arch.name or 'unnamed'}): {exc}"
            ) from None
        if self.provider not in sess.get_providers():
            # ORT itself falls back silently when a provider's libraries fail to load: surface it
            raise TimeModelError(
                f"ONNX Runtime could not start {self.provider} (session uses {sess.get_providers()}); "
                "check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs"
            )
        return sess

    def _runner(self, sess: Any, arch: Architecture, batch_size: int):
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((batch_size, *arch.input_shape), dtype=np.float32)
        in_name = sess.get_inputs()[0].name
        out_names = [o.name for o in sess.get_outputs()]
        if not self.on_gpu:
            feed = {in_name: x}
            return lambda: sess.run(out_names, feed)
        import onnxruntime as ort

        # keep input and output on the GPU: a host copy per call would be measured, not the network
        binding = sess.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.spec.index)
        binding.bind_ortvalue_input(in_name, x_dev)
        for name in out_names:
            binding.bind_output(name, "cuda", self.spec.index)

        def run() -> None:
            sess.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run

    def context(self, batch_size: int) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "provider": self.provider,
            "device": str(self.spec),
            "device_name": self.device_description,
            "batch_size": batch_size,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "versions": {**onnxruntime_versions(), **library_versions("onnx", "numpy")},
        }

    def _measure(self, arch: Architecture, batch_size: int) -> TimeEstimate:
        sess = self.session(arch, batch_size)
        run = self._runner(sess, arch, batch_size)
        warnings = [self.fallback_warning] if self.fallback_warning else []
        with Nvml() as nv:
            telemetry: TelemetryRecord
            # the NVML device this CUDA device is (by UUID: CUDA_VISIBLE_DEVICES renumbers, nvml_match.py)
            before = snapshot_of(nv, self.spec.index) if self.on_gpu else None
            if before is not None:
                m = measure(run, self.settings, TIMERS[self.clock], self.clock, self.context(batch_size))
                after = snapshot_of(nv, self.spec.index)
                calls = m.runs * m.calls_per_run
                telemetry = TelemetryRecord("ok", before, after, energy_between(before, after), calls, m.median_ms)
            else:
                m = measure(run, self.settings, TIMERS[self.clock], self.clock, self.context(batch_size))
                # on a machine without a driver this records "nvml unavailable: <reason>"
                status = nv.status() if not nv.available else "not a GPU measurement"
                if self.on_gpu and nv.available:
                    status = f"NVML cannot tell which of its GPUs {self.spec} is (CUDA_VISIBLE_DEVICES)"
                telemetry = TelemetryRecord(status)
                if self.on_gpu:
                    warnings.append(f"{telemetry.status}; no GPU telemetry or energy recorded")
        if not m.stable:
            warnings.append(
                f"median not stable within {self.settings.rel_tolerance:.0%} after {m.runs} runs (cv {m.cv:.3f}); "
                "the machine may be busy"
            )
        contended = contention_warning(m)
        if contended:
            warnings.append(contended)
        train_ms, train_details = None, {}
        if self.train_step == "torch":
            train_ms, train_details, train_warnings = self._measure_train_step(arch, batch_size)
            warnings.extend(train_warnings)
            train_details["train_step_source"] = self.train_step_source()
        return TimeEstimate(
            time_model=self.name,
            device=str(self.spec),
            batch_size=batch_size,
            latency_ms=getattr(m, f"{self.statistic}_ms"),
            train_step_ms=train_ms,
            peak_memory_bytes=analytic_peak_memory_bytes(arch, batch_size),
            energy_mj=telemetry.energy_per_call_mj,
            latency_p10_ms=m.p10_ms,
            latency_p90_ms=m.p90_ms,
            latency_iqr_ms=m.iqr_ms,
            warnings=tuple(warnings),
            details={
                "measurement": m.to_json(),
                "nvml": telemetry.to_json(),
                "peak_memory_source": "analytic (weights + peak live activations)",
                "arch_hash": arch.hash,
                **train_details,
            },
        )
