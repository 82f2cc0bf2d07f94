"""A device profile records per item whether its measurement was taken while other processes took the measuring
thread's core (the rule of measure_noise.contention, which the estimate's warning uses too), and `profile` and
`hw show` say how many were: a real small profile, hand-made Measurements for the rule, and the shipped
example-cpu profile, written before the record, for what an older profile shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from na_toolkit.cli.profile import _next_steps
from na_toolkit.timemodels.measure import Measurement
from na_toolkit.timemodels.measure_noise import (
    CONTENDED_WALL_RATIO,
    contention,
    contention_record,
    contention_warning,
)
from na_toolkit.timemodels.profile import DeviceProfile

TINY = ("--seed-net", "simple-cnn", "--quick", "--no-progress", "--samples", "1", "--adaptive-rounds", "0")
EXAMPLE = REPO_ROOT / "profiles" / "example-cpu.json"


def _measurement(timer: str, mean_ms: float, wall_mean_ms: float | None) -> Measurement:
    return Measurement(
        median_ms=1.0,
        p10_ms=0.95,
        p90_ms=1.1,
        iqr_ms=0.05,
        mean_ms=mean_ms,
        min_ms=0.9,
        max_ms=1.6,
        cv=0.04,
        cv_classic=0.1,
        runs=50,
        calls_per_run=1,
        warmup_runs=10,
        warmup_s=0.5,
        measure_s=0.1,
        stable=True,
        timer=timer,
        wall_median_ms=1.0,
        wall_mean_ms=wall_mean_ms,
        context={"load_average_1min": {"before": 3.1, "after": 3.4, "cores": 2}},
    )


def test_the_rule_marks_a_thread_cpu_measurement_whose_wall_clock_ran_slower_and_tells_nothing_on_the_wall_clock():
    busy = _measurement("thread_cpu", 1.0, 2.0)
    quiet = _measurement("thread_cpu", 1.0, 1.05)
    wall = _measurement("wall", 1.0, 3.0)
    assert contention(busy) == (True, 2.0) and contention_record(busy) == {"contended": True, "wall_thread_ratio": 2.0}
    assert contention(quiet) == (False, 1.05)
    assert contention_record(quiet) == {"contended": False, "wall_thread_ratio": 1.05}
    assert contention(wall) is None and contention_record(wall) == {}  # the field stays absent: unknown
    # the threshold itself is not contended (the warning's rule: ratio > CONTENDED_WALL_RATIO)
    assert contention(_measurement("thread_cpu", 1.0, CONTENDED_WALL_RATIO)) == (False, CONTENDED_WALL_RATIO)
    # a thread-CPU measurement without a wall-clock mean (read from an older cache) cannot tell either
    assert contention(_measurement("thread_cpu", 1.0, None)) is None
    # the same rule on the JSON a profile summarises and on the Measurement; the warning follows it
    for m in (busy, quiet, wall):
        assert contention(m.to_json()) == contention(m)
        assert (contention_warning(m) is not None) == bool(contention_record(m).get("contended"))
    assert "1-minute load average 3.1 -> 3.4 on 2 cores" in str(contention_warning(busy))


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory, run_cli) -> tuple[Path, dict]:
    """A real `profile --quick` of simple-cnn and one variant, and what its --json said."""
    out = tmp_path_factory.mktemp("contention") / "tiny.json"
    res = run_cli("profile", "--out", out, "--json", *TINY)
    assert res.returncode == 0, res.stderr
    return out, res.json()


def test_every_item_of_a_new_cpu_profile_records_whether_it_was_contended(tiny_profile):
    path, said = tiny_profile
    prof = DeviceProfile.load(path)
    assert prof.runtime["clock"] == "thread_cpu"
    items = [*prof.kernels, *prof.networks]
    assert len(prof.kernels) >= 3 and len(prof.networks) >= 2
    for item in items:
        m = item.measurement
        assert isinstance(m["contended"], bool) and m["wall_thread_ratio"] > 0, m
        assert m["contended"] == (m["wall_thread_ratio"] > CONTENDED_WALL_RATIO)
    contended = sum(item.measurement["contended"] for item in items)
    assert said["contention"] == {"contended": contended, "not_contended": len(items) - contended, "unknown": 0}


def _with_contended_item(tiny: Path, folder: Path) -> tuple[Path, int]:
    """The tiny profile with its first kernel marked contended (and the others not): as measured on a busy
    machine, without needing one."""
    doc = json.loads(tiny.read_text())
    items = [*doc["kernels"], *doc["networks"]]
    for item in items:
        item["measurement"] |= {"contended": False, "wall_thread_ratio": 1.02}
    doc["kernels"][0]["measurement"] |= {"contended": True, "wall_thread_ratio": 1.8}
    path = folder / "busy.json"
    path.write_text(json.dumps(doc))
    return path, len(items)


def test_hw_show_and_profile_say_how_many_items_were_measured_contended(tiny_profile, tmp_path, run_cli, capsys):
    busy, total = _with_contended_item(tiny_profile[0], tmp_path)
    shown = run_cli("hw", "show", busy)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("contended"))
    assert f"1 of {total} items measured while other processes took the measuring thread's core" in line
    doc = run_cli("hw", "show", busy, "--json").json()
    assert doc["contention"] == {"contended": 1, "not_contended": total - 1, "unknown": 0}
    # the end of `na-toolkit profile` says it too (only when some were)
    _next_steps(DeviceProfile.load(busy))
    assert f"contended: 1 of {total} items" in capsys.readouterr().out
    _next_steps(DeviceProfile.load(EXAMPLE))
    assert "contended:" not in capsys.readouterr().out


def test_an_older_profile_without_the_record_shows_it_as_unknown_and_loads_as_before(run_cli):
    before = EXAMPLE.read_bytes()
    assert '"contended"' not in before.decode()
    shown = run_cli("hw", "show", "example-cpu")
    assert shown.returncode == 0, shown.stderr
    assert "contended          unknown" in shown.stdout
    doc = run_cli("hw", "show", EXAMPLE, "--json").json()
    assert doc["contention"] == {"contended": 0, "not_contended": 0, "unknown": 437 + 106}
    assert EXAMPLE.read_bytes() == before
