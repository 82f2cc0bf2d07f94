"""`check_time_model`: the time-model contract (docs/plugin_hooks.md, `na_register_time_models`;
docs/time_models.md) as one call, and `check_time_estimate` for one estimate.

A registered time model is a `TimeModel` subclass with a name and a description, built with
`from_toolkit(toolkit, **options)`, that refuses an option it does not know; on each seed it either gives a
well-formed `TimeEstimate` (its own name, a device, the batch size asked for, a finite positive latency,
latency <= p90 and p10 <= p90, non-negative spread, energy and memory) or raises a typed `TimeModelError` for an
architecture it does not cover, and it covers at least one; a model that does not measure gives the same
estimate twice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NAToolkitError, TimeModelError
from ..ir.architecture import Architecture
from ..timemodels.base import FigureSource, TimeEstimate, TimeModel
from ..validation import takes_option
from ._common import UNKNOWN_OPTION, ConformanceError, expect, fail, listed, resolve, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit


def quick_measure_options() -> dict[str, Any]:
    """Options that keep a measuring model's check short: the CPU and small measurement minimums (still the
    same protocol, `MeasureSettings.quick`)."""
    from ..timemodels.measure import MeasureSettings

    return {
        "device": "cpu",
        "settings": MeasureSettings.quick(min_runs=5, max_runs=40, max_time_s=0.1, rel_tolerance=0.2),
    }


@dataclass(frozen=True)
class TimeModelResult:
    """What `check_time_model` found (every check passed)."""

    name: str
    #: seed -> the estimate at each batch size checked (None: a TimeModelError, the seed is not covered)
    estimates: dict[str, dict[int, TimeEstimate] | None]


def check_time_estimate(est: Any, name: str, batch_size: int, where: str = "") -> TimeEstimate:
    """Check one estimate of the time model `name` at `batch_size`; AssertionError naming what broke."""
    where = where or f"time model {name!r}"
    expect(isinstance(est, TimeEstimate), where, f"estimate() returned {type(est).__name__}, not a TimeEstimate")
    expect(est.time_model == name, where, f"the estimate says time_model={est.time_model!r}, expected {name!r}")
    expect(
        isinstance(est.device, str) and est.device, where, f"the estimate's device {est.device!r} (a non-empty string)"
    )
    expect(est.batch_size == batch_size, where, f"the estimate's batch_size {est.batch_size}, asked for {batch_size}")
    lat = est.latency_ms
    expect(isinstance(lat, (int, float)) and math.isfinite(lat) and lat > 0, where, f"latency_ms {lat!r} (finite, > 0)")
    # the latency is at most p90, and p10 at most p90; it may lie below p10 (statistic="min": the fastest run)
    for lo_name, hi_name in (("latency_ms", "latency_p90_ms"), ("latency_p10_ms", "latency_p90_ms")):
        lo, hi = getattr(est, lo_name), getattr(est, hi_name)
        if lo is not None and hi is not None:
            expect(lo <= hi * (1 + 1e-9), where, f"{lo_name} {lo} > {hi_name} {hi}")
    expect(est.latency_iqr_ms is None or est.latency_iqr_ms >= 0, where, f"latency_iqr_ms {est.latency_iqr_ms} < 0")
    expect(
        est.train_step_ms is None or est.train_step_ms > 0, where, f"train_step_ms {est.train_step_ms} (None or > 0)"
    )
    t10 = est.training_time_s(10)
    expect(t10 is None or t10 > 0, where, f"training_time_s(10) {t10} (None or > 0)")
    mem = est.peak_memory_bytes
    expect(mem is None or (isinstance(mem, int) and mem > 0), where, f"peak_memory_bytes {mem!r} (None or an int > 0)")
    expect(est.energy_mj is None or est.energy_mj >= 0, where, f"energy_mj {est.energy_mj} (None or >= 0)")
    expect(
        isinstance(est.warnings, tuple) and all(isinstance(w, str) for w in est.warnings),
        where,
        f"warnings {est.warnings!r} (a tuple of strings)",
    )
    expect(isinstance(est.details, dict), where, f"details {type(est.details).__name__} (a dict)")
    return est


def default_options(cls: type[TimeModel]) -> dict[str, Any]:
    """The options `check_time_model` builds `cls` with when given none: for a model that measures, those of
    `quick_measure_options()` it takes (a plugin's measuring model need not take the built-ins' `settings`);
    none otherwise."""
    if not cls.measures:
        return {}
    return {key: value for key, value in quick_measure_options().items() if takes_option(cls, key)}


def build_time_model(cls: type[TimeModel], toolkit: Toolkit, options: Mapping[str, Any] | None = None) -> TimeModel:
    """`cls.from_toolkit(toolkit, **options)` (default options: `default_options(cls)`), with the warnings of
    building it (e.g. a profile of another CPU) silenced."""
    opts = dict(options) if options is not None else default_options(cls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_toolkit(toolkit, **opts)


def check_time_model(
    time_model: type[TimeModel] | str,
    toolkit: Toolkit | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    seeds: Sequence[str | Architecture] | None = None,
    batch_sizes: Sequence[int] = (1,),
) -> TimeModelResult:
    """Check a time-model class against its contract; raise AssertionError (`ConformanceError`) naming the
    model, the network and what broke.

    time_model: the class, or its name in `toolkit.time_models`. toolkit: what it is built with
    (`from_toolkit`: hardware models, profiles, layer types; default: the built-ins and the installed
    plugins). options: what it is built with (default: `default_options(cls)`: of `quick_measure_options()`
    those a model that measures takes, none otherwise). seeds: seed names or architectures (default: every
    registered seed)."""
    tk = toolkit_or_default(toolkit)
    name, found = resolve(tk.time_models, time_model, "time model")
    label = f"time model {name!r}"
    if not (isinstance(found, type) and issubclass(found, TimeModel)):
        fail(label, f"{found!r} is not a TimeModel subclass")
    cls: type[TimeModel] = found
    expect(cls.name == name and cls.description, label, f"name {cls.name!r} / description {cls.description!r}")
    expect(
        takes_option(cls, "device"),
        label,
        "its options do not take `device`, which a search gives every device's time model (a config's "
        "`devices.NAME.device`): declare `device` in its Options",
    )
    _check_refuses_unknown_options(cls, tk, options, label)
    try:
        model = build_time_model(cls, tk, options)
    except NAToolkitError as exc:
        used = dict(options) if options is not None else default_options(cls)
        fail(label, f"from_toolkit(toolkit, **{used!r}) raised {type(exc).__name__}: {exc}")
    estimates: dict[str, dict[int, TimeEstimate] | None] = {}
    for item in listed(seeds, "seeds") if seeds is not None else tk.seeds.names():
        arch = tk.seed(item) if isinstance(item, str) else item
        seed_name = item if isinstance(item, str) else (item.name or item.hash)
        where = f"{label} on {seed_name!r}"
        per_batch: dict[int, TimeEstimate] = {}
        try:
            for b in batch_sizes:
                est = model.estimate(arch) if b == 1 else model.estimate(arch, batch_size=b)
                per_batch[b] = check_time_estimate(est, name, b, f"{where} at batch size {b}")
        except TimeModelError:
            estimates[seed_name] = None  # a model may cover some architectures only (a table of one space)
            continue
        except ConformanceError:  # what it returned is wrong: said as such, not as something it raised
            raise
        except Exception as exc:
            fail(where, f"estimate() raised {type(exc).__name__} (an uncovered network is a TimeModelError): {exc}")
        first = per_batch[batch_sizes[0]]
        lat = model.latency_ms(arch, batch_sizes[0])
        if not cls.measures:
            again = model.estimate(arch, batch_size=batch_sizes[0])
            expect(
                again.latency_ms == first.latency_ms,
                where,
                "two estimates of one network differ (the model does not measure)",
            )
            expect(lat == first.latency_ms, where, f"latency_ms() {lat} != estimate().latency_ms {first.latency_ms}")
        else:  # a measurement varies between calls (and with the machine's load): within a factor of two
            expect(0 < lat <= 2 * first.latency_ms, where, f"latency_ms() {lat} vs estimate() {first.latency_ms}")
        estimates[seed_name] = per_batch
    expect(any(v is not None for v in estimates.values()), label, f"estimated none of the networks {list(estimates)}")
    _check_figure_sources(model, label)
    return TimeModelResult(name, estimates)


def _check_figure_sources(model: TimeModel, label: str) -> None:
    """`figure_source(figure)` of every figure a run labels is None or a `FigureSource` (what summary.json's
    `metric_sources` and the reports show beside the figure), and the latency has one."""
    from ..search.figure_sources import FIGURES

    for figure in FIGURES:
        try:
            source = model.figure_source(figure)
        except Exception as exc:
            fail(label, f"figure_source({figure!r}) raised {type(exc).__name__}: {exc}")
        expect(
            source is None or isinstance(source, FigureSource),
            label,
            f"figure_source({figure!r}) returned {type(source).__name__}, not a FigureSource or None",
        )
        if figure == "latency_ms":
            expect(source is not None, label, "figure_source('latency_ms') is None (a time model gives a latency)")


def _check_refuses_unknown_options(
    cls: type[TimeModel], tk: Toolkit, options: Mapping[str, Any] | None, label: str
) -> None:
    """A misspelt option is an error naming it, never silently ignored (a pydantic `Options` model, or an
    `__init__` without **kwargs)."""
    bad = {**(options or {}), UNKNOWN_OPTION: 1}
    try:
        build_time_model(cls, tk, bad)
    except (NAToolkitError, TypeError) as exc:
        expect(UNKNOWN_OPTION in str(exc), label, f"refuses an unknown option without naming it: {exc}")
        return
    fail(label, f"accepts the unknown option {UNKNOWN_OPTION!r} (declare an Options model and check the options)")
