"""What a device profile measures and how: the options of `na-toolkit profile` (`ProfileOptions`, whose
`plan()` is stored in the profile so that --resume regenerates the same sampling), the measurement
minimums of kernels and networks, and the measured time model of each runtime (`make_time_model`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UnknownComponentError
from .devices import parse_device
from .measure import MeasureSettings
from .measured import MeasuredTimeModel

DEFAULT_SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")
RUNTIMES = ("onnxruntime", "torch")

#: profiling minimums (explicitly smaller than the protocol's defaults: the process is kept busy measuring, so
#: caches and clocks are warm; per item the warm-up covers the session's first-run allocations)
KERNEL_SETTINGS = MeasureSettings(
    warmup_runs=10, warmup_s=0.03, min_runs=20, max_runs=400, max_time_s=0.25, rel_tolerance=0.02, target_sample_s=0.002
)
NETWORK_SETTINGS = MeasureSettings(
    warmup_runs=10, warmup_s=0.2, min_runs=40, max_runs=600, max_time_s=1.0, rel_tolerance=0.015, target_sample_s=0.003
)


# ---- measuring ------------------------------------------------------------------------------------------
def make_time_model(
    runtime: str, device: str, settings: MeasureSettings, threads: int = 1, statistic: str = "min"
) -> MeasuredTimeModel:
    """The measured time model a profile of `runtime` on the local `device` measures with."""
    spec = parse_device(device)
    if runtime == "onnxruntime":
        from .onnxruntime_tm import OnnxRuntimeTimeModel

        # a profile is of the device it names: no fallback to the CPU provider (an error lists the available)
        provider = "cuda" if spec.is_cuda else None
        return OnnxRuntimeTimeModel(
            device=device, provider=provider, settings=settings, intra_op_threads=threads, statistic=statistic
        )
    if runtime == "torch":
        from .torch_tm import TorchTimeModel

        return TorchTimeModel(
            device=device, settings=settings, intra_op_threads=threads, measure_training=False, statistic=statistic
        )
    raise UnknownComponentError("profiling runtime", runtime, RUNTIMES)


@dataclass
class ProfileOptions:
    """What to profile and how (`na-toolkit profile`'s arguments). A resumed profile's stored plan wins."""

    out: Path
    device: str = "cpu"
    runtime: str = "onnxruntime"
    samples: int = 100
    seeds: tuple[str, ...] = DEFAULT_SEEDS
    max_moves: int = 6
    adaptive_rounds: int = 2
    batch_size: int = 1
    threads: int = 1
    #: the statistic a profile's latencies are: the lower envelope by default (see measured.STATISTICS)
    statistic: str = "min"
    rng_seed: int = 0
    time_budget_s: float | None = None
    resume: bool = False
    progress: bool = True
    #: checkpoint at least this often (seconds)
    save_every_s: float = 5.0
    kernel_settings: MeasureSettings = KERNEL_SETTINGS
    network_settings: MeasureSettings = NETWORK_SETTINGS
    max_flops: float | None = 2e9

    def plan(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "seeds": list(self.seeds),
            "max_moves": self.max_moves,
            "adaptive_rounds": self.adaptive_rounds,
            "rng_seed": self.rng_seed,
            "threads": self.threads,
            "max_flops": self.max_flops,
            "statistic": self.statistic,
        }
