"""The measurement protocol (na_toolkit.timemodels.measure): warm-up, repeats until stable, robust
statistics, batches of calls, the clocks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from na_toolkit.errors import TimeModelError
from na_toolkit.timemodels.measure import (
    Measurement,
    MeasureSettings,
    measure,
    median_is_stable,
    summarize,
    thread_cpu_timer,
    wall_timer,
)


def busy(seconds: float, clock=time.perf_counter):
    """A callable that computes (not sleeps) for about `seconds` of `clock` (the wall clock; `time.thread_time`:
    that much CPU time of its own, however long a loaded machine takes to give it)."""

    def run():
        t0 = clock()
        x = 0
        while clock() - t0 < seconds:
            x += 1
        return x

    return run


def test_summarize_robust_statistics_of_known_samples():
    x = np.arange(1.0, 101.0)  # 1..100
    s = summarize(x)
    assert s["median_ms"] == pytest.approx(50.5)
    assert s["p10_ms"] == pytest.approx(np.percentile(x, 10))
    assert s["p90_ms"] == pytest.approx(np.percentile(x, 90))
    assert s["iqr_ms"] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
    assert s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    assert s["cv"] == pytest.approx(s["iqr_ms"] / 1.349 / 50.5)
    # one huge outlier moves the classic CV a lot and the robust one not at all
    y = np.full(100, 2.0)
    y[:60] += np.linspace(0, 0.02, 60)
    y[-1] = 200.0
    s2 = summarize(y)
    assert s2["cv"] < 0.01 < s2["cv_classic"]
    with pytest.raises(TimeModelError, match="no samples to summarise"):
        summarize(np.array([]))


def test_median_stability_criterion():
    rng = np.random.default_rng(0)
    steady = list(1.0 + 0.001 * rng.standard_normal(200))
    assert median_is_stable(steady, 0.01)
    drifting = list(np.linspace(1.0, 2.0, 200))  # first half's median far from the whole's
    assert not median_is_stable(drifting, 0.01)
    noisy = list(1.0 + 0.5 * rng.standard_normal(20))  # standard error of the median too large
    assert not median_is_stable(noisy, 0.01)
    assert not median_is_stable([1.0] * 4, 0.01)  # too few samples to say


def test_measure_honours_warmup_minimums_and_reports_a_consistent_summary():
    calls = []
    settings = MeasureSettings(warmup_runs=7, warmup_s=0.05, min_runs=12, max_runs=100, max_time_s=0.5, calls_per_run=1)
    m = measure(lambda: calls.append(1), settings, context={"runtime": "test"})
    assert m.warmup_runs >= 7 and m.warmup_s >= 0.05
    assert 12 <= m.runs <= 100 and len(m.samples_ms) == m.runs
    assert len(calls) == m.warmup_runs + m.runs * m.calls_per_run
    assert m.min_ms <= m.p10_ms <= m.median_ms <= m.p90_ms <= m.max_ms
    assert m.iqr_ms >= 0 and m.cv >= 0
    assert m.context["runtime"] == "test" and set(m.context) <= {"runtime", "load_average_1min"}
    assert m.wall_median_ms is not None


def test_batches_of_calls_for_fast_callables_and_single_calls_for_slow_ones():
    fast = measure(lambda: None, MeasureSettings.quick(target_sample_s=0.001))
    assert fast.calls_per_run > 10  # a no-op is far below a millisecond: time many per sample
    slow = measure(busy(0.003), MeasureSettings.quick(target_sample_s=0.001))
    assert slow.calls_per_run == 1
    assert slow.median_ms >= 2.9  # the wall clock never runs short of the busy loop (a loaded machine: longer)


def test_unstable_measurement_stops_at_the_cap_and_says_so():
    rng = np.random.default_rng(1)

    def erratic():
        t0 = time.perf_counter()
        target = rng.choice([0.0002, 0.002])  # bimodal: the median never settles within 0.1%
        while time.perf_counter() - t0 < target:
            pass

    s = MeasureSettings(
        warmup_runs=2, warmup_s=0.0, min_runs=10, max_runs=5000, max_time_s=0.3, rel_tolerance=0.001, calls_per_run=1
    )
    m = measure(erratic, s)
    assert not m.stable
    assert m.runs >= 10 and m.measure_s < 2.0


def test_thread_cpu_clock_ignores_time_the_thread_does_not_run():
    s = MeasureSettings.quick(calls_per_run=1, min_runs=5, max_time_s=0.2)
    sleeping = measure(lambda: time.sleep(0.002), s, timer=thread_cpu_timer, timer_name="thread_cpu")
    assert sleeping.timer == "thread_cpu"
    assert sleeping.median_ms < 0.5  # sleeping burns no CPU...
    assert sleeping.wall_median_ms >= 1.9  # ...while the wall clock sees the 2 ms
    # 2 ms of CPU, not of the wall clock: a thread preempted for most of a 2 ms wall-clock loop (two test
    # processes and their pools on 2 cores) computes well under 0.5 ms of it
    computing = measure(busy(0.002, time.thread_time), s, timer=thread_cpu_timer)
    assert computing.median_ms > 0.5


def test_measurement_json_round_trip():
    m = measure(busy(0.0005), MeasureSettings.quick(), timer=wall_timer, context={"batch_size": 1})
    doc = m.to_json(samples=True)
    back = Measurement.from_json(doc)
    assert back == m
    assert Measurement.from_json(m.to_json()).samples_ms == ()


@pytest.mark.parametrize(
    "bad",
    [dict(min_runs=2), dict(max_runs=5, min_runs=10), dict(rel_tolerance=0.0), dict(warmup_s=-1.0), dict(max_time_s=0)],
)
def test_bad_settings_are_a_typed_error(bad):
    with pytest.raises(TimeModelError, match="bad measurement settings"):
        MeasureSettings(**bad)


def test_settings_defaults_follow_the_design_protocol():
    s = MeasureSettings()
    assert s.warmup_runs >= 10 and s.warmup_s >= 0.5 and s.min_runs >= 50
    assert MeasureSettings.from_json(s.to_json()) == s
