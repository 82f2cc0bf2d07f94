"""The time-model protocol: estimate latency, training time, peak memory and energy of an architecture on
a device at a batch size. Results are dataclasses with units in their names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..errors import TimeModelError
from ..ir.architecture import Architecture
from ..validation import check_inherited_init, is_finite_number

if TYPE_CHECKING:
    from typing import Self

    from ..toolkit import Toolkit
    from .training import TrainingPlan, TrainTimeEstimate


@dataclass(frozen=True)
class TimeEstimate:
    """What a time model says of one architecture on one device at one batch size."""

    time_model: str
    device: str
    batch_size: int
    latency_ms: float
    train_step_ms: float | None = None
    peak_memory_bytes: int | None = None
    energy_mj: float | None = None
    #: measured: spread of repeated runs; analytic/learned: None
    latency_p10_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_iqr_ms: float | None = None
    warnings: tuple[str, ...] = ()
    #: what the model computed on the way (per-layer rows, the measurement's statistics): left out of the
    #: repr, which stays one line however large the network (read `est.details`)
    details: dict[str, Any] = field(default_factory=dict, repr=False)

    def training_time_s(self, steps: int) -> float | None:
        """Training time for `steps` optimizer steps, from the per-step time."""
        return None if self.train_step_ms is None else self.train_step_ms * steps / 1000.0


@dataclass(frozen=True)
class FigureSource:
    """How a time model obtains one figure of its estimates: `kind` "measured" (the network ran on the device
    here and a clock, allocator or counter gave the figure), "measured elsewhere" (read from a table of
    measurements others took on their device: NAS-Bench-201's latency columns) or "estimated" (a model of the
    device gave it: analytic, learned, a table of simulated figures, even where the model measures the latency);
    `how` says with what (for a table: which table, which of its devices, who measured it); `statistic`, of
    a latency, which statistic of the timed runs it is ("median", "p10", "min"): the one measured, or the one
    a learned model predicts (its profile's records of that statistic); None where the model does not say."""

    kind: Literal["measured", "measured elsewhere", "estimated"]
    how: str
    statistic: str | None = None

    def __post_init__(self) -> None:
        kinds = ("measured", "measured elsewhere", "estimated")
        if self.kind not in kinds:
            raise TimeModelError(f"FigureSource kind {self.kind!r}: one of {', '.join(map(repr, kinds))}")
        if not (isinstance(self.how, str) and self.how):
            raise TimeModelError(f"FigureSource how {self.how!r}: say with what the figure is obtained (a string)")
        if self.statistic is not None and not (isinstance(self.statistic, str) and self.statistic):
            raise TimeModelError(
                f"FigureSource statistic {self.statistic!r}: the statistic of the timed runs, a string such as "
                '"median", "p10" or "min" (None: not a measured latency)'
            )

    def to_json(self) -> dict[str, str]:
        doc = {"kind": self.kind, "how": self.how}
        return {**doc, "statistic": self.statistic} if self.statistic else doc


#: the figures of an estimate that are amounts (finite, >= 0) when given
_AMOUNTS = (
    "latency_ms",
    "train_step_ms",
    "peak_memory_bytes",
    "energy_mj",
    "latency_p10_ms",
    "latency_p90_ms",
    "latency_iqr_ms",
)


def estimate_problems(est: Any, name: str, batch_size: int) -> list[str]:
    """What makes `est` no answer of the time model `name` at `batch_size` ([] when nothing): not a
    TimeEstimate, another model's name or batch size, a latency or other amount that is not a finite number
    >= 0. The search checks every estimate with it (`na_toolkit.testing.check_time_model` checks more)."""
    if not isinstance(est, TimeEstimate):
        return [f"returned {type(est).__name__}, not a TimeEstimate"]
    problems = []
    if est.time_model != name:
        problems.append(f"the estimate says time_model={est.time_model!r}")
    if est.batch_size != batch_size:
        problems.append(f"the estimate is for batch size {est.batch_size!r}, asked for {batch_size}")
    for key in _AMOUNTS:
        value = getattr(est, key)
        if key == "latency_ms" or value is not None:
            if not (is_finite_number(value) and value >= 0):
                problems.append(f"{key}={value!r} (a finite number >= 0)")
    return problems


class TimeModel:
    """Base class of every registered time model. Construct with the device (and options); `estimate`
    gives a `TimeEstimate`. Code that holds a toolkit builds one with `from_toolkit` (or
    `get_time_model`), which hands over the registries a model needs to resolve names."""

    name: ClassVar[str] = ""
    #: its `__init__(**options)` takes any keyword for its subclasses: one without an `__init__` of its own
    #: declares no options (validation.derived_options_model), and the options it is given are checked
    _generic_options_init: ClassVar[bool] = True
    description: ClassVar[str] = ""
    #: True when estimating runs the network on the device (slow, noisy); False for analytic/learned/table
    measures: ClassVar[bool] = False

    def __init__(self, device: str = "cpu", **options: Any):
        if options:
            check_inherited_init(self, TimeModel, options, "time model")
        self.device = device
        self.options = options

    @classmethod
    def from_toolkit(cls, toolkit: Toolkit, **options: Any) -> Self:
        """This time model built with what `toolkit` registered (hardware models, device profiles, layer
        types). The default passes the options through; a model that resolves names (roofline: hardware
        model names; learned: profile names and the layer types of the profile's networks) overrides it."""
        return cls(**options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} on {getattr(self, 'device', None)!r}>"

    def estimate(self, arch: Architecture, batch_size: int = 1) -> TimeEstimate:
        """Latency (`latency_ms`, one forward pass of `batch_size` samples, in milliseconds), training-step
        time, peak memory (bytes) and energy (millijoules) of `arch` on this model's device, where the model
        gives them (None where not). E.g. `get_time_model("roofline", toolkit, device="h100-sxm")
        .estimate(toolkit.seed("resnet-cifar"), batch_size=64).latency_ms`."""
        raise NotImplementedError

    def check_request(self, arch: Any, batch_size: Any) -> None:
        """Refuse what no time model can estimate, naming this model: `arch` must be an `Architecture` (a seed
        name is not one: `toolkit.seed(name)` builds it) and `batch_size` a positive int. The built-in models
        call it first in `estimate`; a plugin's model may too."""
        what = f"time model {self.name or type(self).__name__!r}"
        if not isinstance(arch, Architecture):
            hint = (
                f"; build a seed network with toolkit.seed({arch!r}), or read a file with "
                "Architecture.load(path, toolkit.layer_types)"
                if isinstance(arch, str)
                else ""
            )
            raise TimeModelError(f"{what}: estimate() takes an Architecture, got {type(arch).__name__}{hint}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            # a batch size from np.arange is a numpy integer, which the estimate would carry into its JSON
            numpy_int = getattr(getattr(batch_size, "dtype", None), "kind", "") in ("i", "u") and batch_size >= 1
            hint = f" (a numpy integer: pass int(batch_size), {int(batch_size)})" if numpy_int else ""
            raise TimeModelError(f"{what}: batch_size must be a positive int, got {batch_size!r}{hint}")

    def latency_ms(self, arch: Architecture, batch_size: int = 1) -> float:
        return self.estimate(arch, batch_size).latency_ms

    def gives(self, figure: str) -> bool | None:
        """Does this model's estimate give `figure` (`peak_memory_bytes`, `energy_mj`)? True or False when the
        model knows before estimating, None when only an estimate tells (the default). A search refuses a
        budget on a figure its device's model answers False to before anything runs (search/components.py)."""
        return None

    def why_not_given(self, figure: str) -> str | None:
        """Why this model's estimates give no `figure` and what would make them (the end of a search's
        error for a budget on it), or None when it cannot say."""
        return None

    def figure_source(self, figure: str) -> FigureSource | None:
        """How this model obtains `figure` (`latency_ms`, `peak_memory_bytes`, `energy_mj`, `train_time_s`), or
        None when it gives none. The default: a model that `measures` measures every figure it gives, any other
        estimates them; a measured model overrides it for the figures it computes (ONNX Runtime's peak memory
        on a CPU). Run provenance records it per device and figure, and the reports label each figure with it."""
        if figure == "train_time_s":
            source = self.train_step_source()
            if source is None:
                return None
            return FigureSource("measured" if source.startswith("measured") else "estimated", source)
        if self.gives(figure) is False:
            return None
        return FigureSource("measured" if self.measures else "estimated", f"time model {self.name} of {self.device}")

    def memory_capacity_bytes(self) -> int | None:
        """The memory the device holds tensors in, when this model knows it (a roofline: its hardware
        model's), else None. A search makes it a hard limit on the device's `peak_memory_bytes`: a network
        that does not fit cannot run there (search/components.py)."""
        return None

    # ---- training time ----------------------------------------------------------------------------------
    def train_step_source(self) -> str | None:
        """How this model gets the time of a training step (docs/time_models.md, "Training time"), or None
        when it cannot give one (then a budget on `train_time_s@DEVICE` is a config error). A model whose
        `TimeEstimate.train_step_ms` is set overrides this to say how it gets it."""
        return None

    def train_step_ms(self, arch: Architecture, batch_size: int) -> float:
        """The time of one training step (forward, backward, optimizer update) at `batch_size`: by default
        the estimate's `train_step_ms`. A model that cannot give one raises TimeModelError, never 0."""
        what = f"time model {self.name!r} on {self.device!r}"
        if self.train_step_source() is None:
            raise TimeModelError(f"{what} estimates no training step (inference only); docs/time_models.md")
        est = self.estimate(arch, batch_size)
        if est.train_step_ms is None:
            why = "; ".join(est.warnings) or "its estimate has none"
            raise TimeModelError(
                f"{what}: no training-step time for {arch.name or arch.hash} at batch {batch_size}: {why}"
            )
        return float(est.train_step_ms)

    def train_time(self, arch: Architecture, plan: TrainingPlan) -> TrainTimeEstimate:
        """`train_time_s` of `arch` under `plan`: steps per epoch × epochs × the step time at the plan's batch."""
        from .training import TrainTimeEstimate

        step_ms = self.train_step_ms(arch, plan.step_batch_size)
        return TrainTimeEstimate(
            time_model=self.name,
            device=self.device,
            train_time_s=step_ms * plan.steps / 1000.0,
            train_step_ms=step_ms,
            steps=plan.steps,
            batch_size=plan.step_batch_size,
            source=self.train_step_source() or "",
        )
