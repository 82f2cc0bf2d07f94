"""Every registered time model (built-ins and plugins) honours the protocol on the seeds: a well-formed
TimeEstimate, or a typed TimeModelError for an architecture it does not cover; an unknown option is refused
(timm-style contract test, parametrized over the registry). The checks are the plugin kit's
(`na_toolkit.testing.check_time_model`, docs/testing.md), so a plugin's time model is held to the same
contract in its own tests. GPU-only parts are not exercised: measured models run on the CPU."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from pydantic import Field

from conftest import default_toolkit
from na_toolkit import validation
from na_toolkit.errors import ConfigError, TimeModelError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.config import load_config
from na_toolkit.testing import ConformanceError, check_time_estimate, check_time_model, quick_measure_options
from na_toolkit.testing.timemodels import default_options
from na_toolkit.timemodels.base import FigureSource, TimeEstimate, TimeModel

TOOLKIT = default_toolkit()


#: what the models that measure run on: the ImageNet seeds run dozens of times at GMACs each on one core would
#: take a minute and check nothing the small seeds do not (the analytic models estimate every seed)
MEASURED_ON = [n for n in TOOLKIT.seeds.names() if TOOLKIT.seeds.get(n).dataset != "imagenet"]


@pytest.mark.parametrize("name", TOOLKIT.time_models.names())
def test_time_model_contract(name):
    result = check_time_model(name, TOOLKIT, seeds=MEASURED_ON if TOOLKIT.time_models.get(name).measures else None)
    covered = {seed: per_batch for seed, per_batch in result.estimates.items() if per_batch is not None}
    assert covered, name
    for per_batch in covered.values():
        assert math.isfinite(per_batch[1].latency_ms)


def test_analytic_models_are_checked_at_other_batch_sizes():
    result = check_time_model("roofline", TOOLKIT, batch_sizes=(1, 8))
    assert sorted(result.estimates) == sorted(TOOLKIT.seeds.names())  # an analytic model estimates every seed
    for per_batch in result.estimates.values():
        assert per_batch is not None and per_batch[8].batch_size == 8
        assert per_batch[8].latency_ms >= per_batch[1].latency_ms  # more work is never faster in a roofline


# ---- the kit catches what breaks the contract -------------------------------------------------------------
class _Loose(TimeModel):
    """The anti-pattern the kit refuses: an `__init__` of its own passing any keyword on, options read with
    `self.options.get`, so a misspelling is ignored."""

    name = "loose"
    description = "latency from FLOPs at a rate read from self.options"

    def __init__(self, device="cpu", **options):
        super().__init__(device, **options)

    def estimate(self, arch, batch_size=1):
        rate = float(self.options.get("rate_flops_per_s", 1e11))
        return TimeEstimate(self.name, self.device, batch_size, arch.flops * batch_size / rate * 1e3)


class _WrongBatch(TimeModel):
    name = "wrong-batch"
    description = "says batch 1 whatever it is asked"

    def __init__(self, device: str = "cpu"):
        super().__init__(device=device)

    def estimate(self, arch, batch_size=1):
        return TimeEstimate(self.name, self.device, 1, 1.0)


class _Raises(_WrongBatch):
    name = "raises"
    description = "raises a KeyError instead of a TimeModelError"

    def estimate(self, arch, batch_size=1):
        raise KeyError("conv2d")


class _ReturnsFloat(_WrongBatch):
    name = "returns-float"
    description = "returns the latency as a bare float"

    def estimate(self, arch, batch_size=1):
        return 1.0


def test_the_kit_refuses_an_options_dict_that_accepts_misspellings():
    with pytest.raises(ConformanceError, match=r"time model 'loose': accepts the unknown option"):
        check_time_model(_Loose, TOOLKIT, seeds=["simple-cnn"])


class _NoInit(TimeModel):
    """Without an `__init__` of its own the base's takes no options: a misspelling cannot get through."""

    name = "no-init"
    description = "latency from FLOPs at a fixed rate"

    def estimate(self, arch, batch_size=1):
        return TimeEstimate(self.name, self.device, batch_size, arch.flops * batch_size / 1e11 * 1e3)


def test_a_model_without_an_init_of_its_own_passes_the_options_check_by_refusing_every_option():
    check_time_model(_NoInit, TOOLKIT, seeds=["simple-cnn"])
    with pytest.raises(ConfigError, match=r"time model 'no-init' options\.rate_flops_per_s: unknown key"):
        _NoInit(rate_flops_per_s=1e11)


class _PluginMeasures(TimeModel):
    """A plugin's measuring model with options of its own (no `settings`, which only the built-ins take): it
    times a cheap step of the network's own (its JSON, standing in for a forward pass) and reports a statistic."""

    name = "plugin-measures"
    description = "the median of timed JSON encodings of the network"
    measures = True

    class Options(validation.Options):
        device: str = "cpu"
        repeats: int = Field(5, ge=3)

    def __init__(self, device="cpu", **options):
        opts = validation.validate_options(self.Options, {"device": device, **options}, f"time model {self.name!r}")
        super().__init__(device=opts.device, repeats=opts.repeats)
        self.repeats = opts.repeats

    def estimate(self, arch, batch_size=1):
        times_ms = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            arch.to_json()
            times_ms.append((time.perf_counter() - t0) * 1e3 * batch_size)
        return TimeEstimate(self.name, self.device, batch_size, float(np.median(times_ms)))

    def figure_source(self, figure):
        return FigureSource("measured", "timed JSON encodings", statistic="median") if figure == "latency_ms" else None


def test_a_plugin_measuring_model_is_built_with_the_quick_options_it_takes():
    # default options of a measuring model were the built-ins' (`settings` included): a plugin's model that
    # takes no `settings` failed the check with "settings: unknown key" before anything was measured
    assert default_options(_PluginMeasures) == {"device": "cpu"}
    result = check_time_model(_PluginMeasures, TOOLKIT, seeds=["simple-cnn"])
    assert result.estimates["simple-cnn"][1].latency_ms > 0
    assert set(default_options(TOOLKIT.time_models.get("onnxruntime"))) == {"device", "settings"}


def test_a_measured_latency_that_is_the_fastest_run_passes():
    # statistic="min" (a documented option of the measuring models) reports the fastest run, below p10: the
    # check refused it ("latency_p10_ms ... > latency_ms ..."), the built-in onnxruntime's included
    result = check_time_model(
        "onnxruntime", TOOLKIT, options={**quick_measure_options(), "statistic": "min"}, seeds=["simple-cnn"]
    )
    est = result.estimates["simple-cnn"][1]
    assert est.latency_ms <= est.latency_p10_ms


class _SourceAsDict(_NoInit):
    name = "source-as-dict"

    def figure_source(self, figure):
        return {"kind": "measured", "how": "a stopwatch"}  # summary.json's form, not a FigureSource


def test_a_figure_source_is_checked_where_it_is_made_and_by_the_kit():
    # a misspelt kind or a statistic that is no string went into summary.json's metric_sources as it was,
    # and a dict from figure_source crashed the search's provenance with an AttributeError
    with pytest.raises(TimeModelError, match=r"FigureSource kind 'measurd': one of 'measured'"):
        FigureSource("measurd", "a stopwatch")
    with pytest.raises(TimeModelError, match=r"FigureSource statistic 0.5: the statistic of the timed runs"):
        FigureSource("measured", "a stopwatch", statistic=0.5)
    assert FigureSource("measured", "a stopwatch", statistic="min").to_json()["statistic"] == "min"
    with pytest.raises(ConformanceError, match=r"figure_source\('latency_ms'\) returned dict, not a FigureSource"):
        check_time_model(_SourceAsDict, TOOLKIT, seeds=["simple-cnn"])


def test_the_kit_names_the_model_the_network_and_the_field():
    with pytest.raises(
        ConformanceError, match=r"time model 'wrong-batch' on 'simple-cnn' at batch size 4: .*batch_size 1"
    ):
        check_time_model(_WrongBatch, TOOLKIT, seeds=["simple-cnn"], batch_sizes=(1, 4))
    with pytest.raises(ConformanceError, match=r"'raises' on 'simple-cnn': estimate\(\) raised KeyError"):
        check_time_model(_Raises, TOOLKIT, seeds=["simple-cnn"])
    # what it returned is wrong: said as such, not as something estimate() raised
    with pytest.raises(ConformanceError) as err:
        check_time_model(_ReturnsFloat, TOOLKIT, seeds=["simple-cnn"])
    assert str(err.value) == (
        "time model 'returns-float' on 'simple-cnn' at batch size 1: estimate() returned float, not a TimeEstimate"
    )


def test_check_time_estimate_bounds():
    good = TimeEstimate("m", "cpu", 1, 2.0, latency_p10_ms=1.0, latency_p90_ms=3.0)
    assert check_time_estimate(good, "m", 1) is good
    fastest = TimeEstimate("m", "cpu", 1, 0.9, latency_p10_ms=1.0, latency_p90_ms=3.0)  # statistic="min"
    assert check_time_estimate(fastest, "m", 1) is fastest
    for bad, field in (
        (TimeEstimate("m", "cpu", 1, float("nan")), "latency_ms"),
        (TimeEstimate("m", "cpu", 1, 2.0, latency_p10_ms=3.5, latency_p90_ms=3.0), "latency_p10_ms"),
        (TimeEstimate("m", "cpu", 1, 3.5, latency_p90_ms=3.0), "latency_ms 3.5 > latency_p90_ms"),
        (TimeEstimate("m", "cpu", 1, 2.0, energy_mj=-1.0), "energy_mj"),
        (TimeEstimate("m", "cpu", 1, 2.0, peak_memory_bytes=0), "peak_memory_bytes"),
        (TimeEstimate("other", "cpu", 1, 2.0), "time_model"),
    ):
        with pytest.raises(ConformanceError, match=field):
            check_time_estimate(bad, "m", 1)


# ---- what no model can estimate is refused by name --------------------------------------------------------
BUILT_IN_MODELS = [
    n for n in TOOLKIT.time_models.names() if TOOLKIT.time_models.plugin_of(n).startswith("na_toolkit.builtin")
]


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_built_in_models_refuse_a_seed_name_and_a_bad_batch_size(name):
    from na_toolkit.errors import TimeModelError
    from na_toolkit.timemodels import get_time_model
    from na_toolkit.timemodels.profile import ProfileDeviceWarning

    with warnings.catch_warnings():
        # `learned` loads the shipped example-cpu profile, an Intel Xeon's: elsewhere it warns, as it should
        warnings.simplefilter("ignore", ProfileDeviceWarning)
        model = get_time_model(name, TOOLKIT)
    with pytest.raises(TimeModelError, match=r"takes an Architecture, got str; build a seed network with toolkit\."):
        model.estimate("simple-cnn")
    arch = TOOLKIT.seed("simple-cnn")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(TimeModelError, match=rf"batch_size must be a positive int, got {bad!r}"):
            model.estimate(arch, bad)
    # a batch size from np.arange: the message says what it is and what to pass
    with pytest.raises(TimeModelError, match=r"got np\.int64\(8\) \(a numpy integer: pass int\(batch_size\), 8\)$"):
        model.estimate(arch, np.int64(8))


class _NoDevice(TimeModel):
    """Options without `device`, which the search gives every device's time model: no config can use it."""

    name = "no-device"
    description = "latency from FLOPs at a rate of its own"

    class Options(validation.Options):
        scale: float = 1.0

    def __init__(self, device="cpu", **options):
        self.scale = validation.validate_options(self.Options, options, f"time model {self.name!r}").scale
        super().__init__(device=device)

    def estimate(self, arch, batch_size=1):
        return TimeEstimate(self.name, self.device, batch_size, self.scale * arch.flops * batch_size / 1e8)


def test_a_model_whose_options_lack_the_device_a_search_gives_it_is_named_by_the_kit_and_the_config():
    # before: the kit passed it, and every config then failed on "options.device: unknown key", a key its user
    # never wrote
    with pytest.raises(ConformanceError, match=r"time model 'no-device': its options do not take `device`"):
        check_time_model(_NoDevice, TOOLKIT, seeds=["simple-cnn"])
    tk = load_toolkit(entry_points=False)
    tk.time_models.add(_NoDevice)
    doc = {
        "seed_network": "simple-cnn",
        "evaluations": 4,
        "evaluator": "synthetic",
        "devices": {"cpu": {"device": "cpu", "time_model": {"name": "no-device", "options": {"scale": 2.0}}}},
    }
    with pytest.raises(ConfigError, match=r"^devices\.cpu\.time_model: time model 'no-device' \(plugin .*\) takes no "):
        load_config(doc, toolkit=tk)


@pytest.mark.parametrize(
    ("name", "options", "close"),
    [
        ("roofline", {"device": "x86-cpu", "dtyp": "fp16"}, "'dtype'"),
        ("onnxruntime", {"device": "cpu", "intra_op_thread": 2}, "'intra_op_threads'"),
        ("learned", {"device": "example-cpu", "statistc": "min"}, "'statistic'"),
    ],
)
def test_a_misspelt_option_of_a_built_in_model_is_refused_with_a_did_you_mean(name, options, close):
    # before: the known options were listed, but not the one meant (docs/plugin_hooks.md promises it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example profile is of another CPU
        with pytest.raises(TimeModelError, match=rf"\. Did you mean {close}.*\? Known: "):
            TOOLKIT.time_models.get(name).from_toolkit(TOOLKIT, **options)
