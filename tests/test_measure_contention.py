"""A measured figure carries the machine's load, and a thread-CPU measurement taken while other processes
shared its core says so (na_toolkit.timemodels.measure_noise): real ONNX Runtime sessions, real busy
processes."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import get_seed
from na_toolkit.timemodels.measure import MeasureSettings, measure, thread_cpu_timer
from na_toolkit.timemodels.measure_noise import CONTENDED_WALL_RATIO, contention_warning
from na_toolkit.timemodels.onnxruntime_tm import OnnxRuntimeTimeModel

QUICK = MeasureSettings.quick(min_runs=10, max_runs=100, max_time_s=0.5, rel_tolerance=0.1)


def test_every_measurement_records_the_load_it_was_taken_under():
    est = OnnxRuntimeTimeModel(settings=QUICK).estimate(get_seed("simple-cnn"))
    load = est.details["measurement"]["context"]["load_average_1min"]
    assert load["before"] >= 0 and load["after"] >= 0 and load["cores"] == os.cpu_count()


def test_a_measurement_on_a_core_other_processes_take_says_so():
    # more busy processes than cores: the measuring thread gets its core part of the time only, which the
    # thread-CPU clock hides (the measurement stays "stable") and the wall clock shows
    spin = "print('spinning', flush=True)\nwhile True: pass"
    spinners = [
        subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        for p in spinners:  # every one of them running before the measurement starts
            assert p.stdout is not None and p.stdout.readline().strip() == "spinning"
        settings = MeasureSettings.quick(min_runs=40, max_runs=200, max_time_s=1.0, rel_tolerance=0.1)
        est = OnnxRuntimeTimeModel(settings=settings).estimate(get_seed("resnet-cifar"))
    finally:
        for p in spinners:
            p.kill()
        for p in spinners:
            p.wait()
    m = est.details["measurement"]
    assert m["timer"] == "thread_cpu"
    assert m["wall_mean_ms"] > CONTENDED_WALL_RATIO * m["mean_ms"]
    said = [w for w in est.warnings if "competed for the CPU" in w]
    assert len(said) == 1 and "1-minute load average" in said[0], est.warnings


def test_no_contention_warning_for_a_wall_clock_or_an_uncontended_measurement():
    m = measure(lambda: sum(range(200)), QUICK, thread_cpu_timer, "thread_cpu")
    assert m.timer == "thread_cpu"
    # the same samples as if the wall clock had agreed with the thread's CPU time
    from dataclasses import replace

    assert contention_warning(replace(m, wall_mean_ms=m.mean_ms)) is None
    assert contention_warning(replace(m, timer="wall", wall_mean_ms=3 * m.mean_ms)) is None
    assert contention_warning(replace(m, wall_mean_ms=3 * m.mean_ms)) is not None
