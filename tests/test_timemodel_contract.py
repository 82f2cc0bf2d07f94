"""Every registered time model (built-ins and plugins) honours the protocol on the seeds: a well-formed
TimeEstimate, or a typed TimeModelError for an architecture it does not cover (timm-style contract test,
parametrized over the registry). GPU-only parts are not exercised: measured models run on the CPU."""

from __future__ import annotations

import math
import warnings

import pytest

from conftest import default_toolkit
from na_toolkit.errors import TimeModelError
from na_toolkit.timemodels.base import TimeEstimate, TimeModel
from na_toolkit.timemodels.measure import MeasureSettings

TOOLKIT = default_toolkit()
QUICK = MeasureSettings.quick(min_runs=5, max_runs=40, max_time_s=0.1, rel_tolerance=0.2)


def _build(name: str) -> TimeModel:
    cls = TOOLKIT.time_models.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the example profile of another CPU
        if cls.measures:
            return cls.from_toolkit(TOOLKIT, device="cpu", settings=QUICK)
        return cls.from_toolkit(TOOLKIT)


@pytest.mark.parametrize("name", TOOLKIT.time_models.names())
def test_time_model_contract(name):
    cls = TOOLKIT.time_models.get(name)
    assert issubclass(cls, TimeModel) and cls.name == name and cls.description
    model = _build(name)
    estimates = []
    for seed in TOOLKIT.seeds.names():
        arch = TOOLKIT.seed(seed)
        try:
            est = model.estimate(arch)
        except TimeModelError:
            continue  # a model may cover only some architectures (a table of one search space), typed
        estimates.append(est)
        assert isinstance(est, TimeEstimate)
        assert est.time_model == name and isinstance(est.device, str) and est.device
        assert est.batch_size == 1
        assert math.isfinite(est.latency_ms) and est.latency_ms > 0
        assert model.latency_ms(arch) == pytest.approx(est.latency_ms, rel=1.0)  # measured ones vary
        for lo, hi in ((est.latency_p10_ms, est.latency_ms), (est.latency_ms, est.latency_p90_ms)):
            if lo is not None and hi is not None:
                assert lo <= hi * (1 + 1e-9)
        assert est.latency_iqr_ms is None or est.latency_iqr_ms >= 0
        assert est.train_step_ms is None or est.train_step_ms > 0
        assert est.training_time_s(10) is None or est.training_time_s(10) > 0
        assert est.peak_memory_bytes is None or (isinstance(est.peak_memory_bytes, int) and est.peak_memory_bytes > 0)
        assert est.energy_mj is None or est.energy_mj >= 0
        assert isinstance(est.warnings, tuple) and all(isinstance(w, str) for w in est.warnings)
        assert isinstance(est.details, dict)
    assert estimates, f"time model {name!r} estimated none of the seeds {TOOLKIT.seeds.names()}"
