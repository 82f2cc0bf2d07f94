"""Device profiles: the `na-toolkit profile` command in real subprocesses (small --samples, --quick
minimums), Ctrl-C and --resume, atomic checkpoints, and the errors of bad profiles."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import interruptible
from na_toolkit.errors import ProfileError
from na_toolkit.timemodels.profile import (
    PROFILE_SCHEMA_VERSION,
    DeviceProfile,
    ProfileDeviceWarning,
    check_device,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = ("--seed-net", "simple-cnn", "--quick", "--no-progress", "--max-moves", "3")


@pytest.fixture(scope="module")
def small_profile(tmp_path_factory, run_cli) -> Path:
    out = tmp_path_factory.mktemp("profile") / "small.json"
    res = run_cli("profile", "--out", out, "--samples", "5", "--adaptive-rounds", "1", *SMALL)
    assert res.returncode == 0, res.stderr
    assert "complete" in res.stdout
    return out


def test_profile_command_writes_a_complete_schema_versioned_profile(small_profile):
    doc = json.loads(small_profile.read_text())
    assert doc["schema"] == "na_toolkit.device_profile" and doc["schema_version"] == PROFILE_SCHEMA_VERSION
    assert doc["complete"] is True and doc["stopped"] == ""
    prof = DeviceProfile.load(small_profile)
    assert len(prof.networks) >= 5 and len(prof.kernels) >= 5
    # device and software description
    from na_toolkit.machine import cpu_model

    assert prof.device["cpu_model"] == cpu_model() == prof.device_name
    assert prof.device["cores"] == os.cpu_count()
    assert {"onnxruntime", "numpy"} <= set(prof.software["libraries"])
    assert prof.runtime["name"] == "onnxruntime" and prof.runtime["intra_op_threads"] == 1
    assert prof.nvml["status"]  # "ok" or "nvml unavailable: ..."
    # raw measurements: every network is an architecture with its measurement; kernels are configurations
    for rec in prof.networks:
        assert rec.measurement["min_ms"] <= rec.measurement["median_ms"] <= rec.measurement["p90_ms"]
        assert rec.seed == "simple-cnn"
    phases = {k.phase for k in prof.kernels} | {n.phase for n in prof.networks}
    assert "initial" in phases
    assert len({k.key for k in prof.kernels}) == len(prof.kernels)  # each configuration measured once


def running_profile(cmd: list[str], out: Path) -> subprocess.Popen:
    """`cmd` (a `na-toolkit profile` writing `out`) started and, once a checkpoint holds a couple of networks,
    still running: for the caller to stop with a signal (it is killed here if it cannot get that far)."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait for a checkpoint holding a couple of networks
            if out.exists():
                try:
                    if len(DeviceProfile.load(out).networks) >= 2:
                        break
                except ProfileError:
                    pass  # never happens with atomic writes; the assertion below would show it
            time.sleep(0.05)
        assert proc.poll() is None, "the profile finished before it could be stopped"
    except BaseException:
        proc.kill()
        raise
    return proc


def test_sigint_keeps_a_valid_partial_profile_and_resume_completes_it(tmp_path):
    out = tmp_path / "partial.json"
    cmd = [
        sys.executable,
        "-m",
        "na_toolkit.cli.main",
        "profile",
        "--out",
        str(out),
        "--samples",
        "40",
        "--adaptive-rounds",
        "0",
        *SMALL,
    ]
    proc = running_profile(cmd, out)
    try:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.stopped == "interrupted"
    assert "continue with --resume" in stdout
    measured = {n.hash for n in partial.networks}
    assert 2 <= len(measured) < 40
    assert not list(tmp_path.glob(".*.tmp-*"))  # no temp file left behind

    res = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    done = DeviceProfile.load(out)
    assert done.complete
    hashes = [n.hash for n in done.networks]
    assert len(hashes) == len(set(hashes)) == 40  # nothing measured twice, nothing lost
    assert measured <= set(hashes)
    assert done.elapsed_s >= partial.elapsed_s


def test_time_budget_stops_with_a_resumable_profile(tmp_path, run_cli):
    out = tmp_path / "budget.json"
    res = run_cli("profile", "--out", out, "--samples", "50", "--time-budget-s", "0.5", *SMALL)
    assert res.returncode == 0, res.stderr
    prof = DeviceProfile.load(out)
    assert not prof.complete and prof.stopped.startswith("time budget")


def test_existing_output_needs_resume(small_profile, run_cli):
    line = run_cli("profile", "--out", small_profile, *SMALL).error_line()
    assert "exists" in line and "--resume" in line


@pytest.mark.parametrize("seconds", ["-5", "nan", "inf"])
def test_a_time_budget_that_is_no_number_of_seconds_is_refused_before_measuring(tmp_path, run_cli, seconds):
    out = tmp_path / "p.json"
    res = run_cli("profile", "--device", "cpu", "--out", out, "--time-budget-s", seconds)
    assert res.returncode == 2 and "--time-budget-s must be a number of seconds >= 0" in res.error_line()
    assert not out.exists()


def test_corrupt_and_wrong_version_profiles_are_profile_errors(tmp_path, small_profile, run_cli):
    bad = tmp_path / "corrupt.json"
    bad.write_text('{"schema": "na_toolkit.device_profile", "kern')
    damaged = r"profile '.*corrupt.json' is not valid JSON: .*; the file is damaged: measure it again"
    with pytest.raises(ProfileError, match=damaged):
        DeviceProfile.load(bad)
    assert re.search(damaged, run_cli("profile", "--out", bad, "--resume", *SMALL).error_line())

    doc = json.loads(small_profile.read_text())
    doc["schema_version"] = PROFILE_SCHEMA_VERSION + 1
    old = tmp_path / "future.json"
    old.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="schema_version"):
        DeviceProfile.load(old)

    doc = json.loads(small_profile.read_text())
    doc["networks"][0]["measurement"] = {"median_ms": -1}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=r"networks\[0\].*positive 'median_ms'"):
        DeviceProfile.load(broken)

    doc = json.loads(small_profile.read_text())
    doc["kernels"][0]["latency"] = 1.0  # a key the format does not have: named by its path
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=r"typo\.json.*kernels\[0\]\.latency: unknown key"):
        DeviceProfile.load(typo)

    not_a_profile = tmp_path / "arch.json"
    not_a_profile.write_text(json.dumps({"nodes": []}))
    with pytest.raises(ProfileError, match="not a na_toolkit device profile"):
        DeviceProfile.load(not_a_profile)


def test_profile_of_another_device_warns_with_both_names_and_is_not_resumed(tmp_path, small_profile, run_cli):
    doc = json.loads(small_profile.read_text())
    doc["device"]["name"] = "Imaginary CPU 9000"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    prof = DeviceProfile.load(other)
    with pytest.warns(ProfileDeviceWarning) as caught:
        msg = check_device(prof)
    from na_toolkit.machine import cpu_model

    assert "Imaginary CPU 9000" in msg and cpu_model() in msg
    assert str(caught[0].message).startswith(msg)
    line = run_cli("profile", "--out", other, "--resume", *SMALL).error_line()
    assert "Imaginary CPU 9000" in line and cpu_model() in line


def test_bad_arguments_are_one_line_errors(tmp_path, run_cli):
    assert (
        "unknown seed network"
        in run_cli("profile", "--out", tmp_path / "x.json", "--seed-net", "nope", "--quick").error_line()
    )
    assert "unknown local device" in run_cli("profile", "--out", tmp_path / "y.json", "--device", "tpu:0").error_line()
    assert "does not exist" in run_cli("profile", "--out", tmp_path / "z.json", "--resume").error_line()
    from na_toolkit.timemodels.onnxruntime_tm import available_providers

    if "CUDAExecutionProvider" not in available_providers():  # a GPU profile never falls back to the CPU
        line = run_cli("profile", "--out", tmp_path / "g.json", "--device", "cuda:0", "--quick").error_line()
        assert "'cuda' is not available" in line and "CPUExecutionProvider" in line


def test_profile_json_reports_what_the_profile_holds(small_profile, run_cli):
    res = run_cli("profile", "--out", small_profile, "--resume", "--json", *SMALL)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    prof = DeviceProfile.load(small_profile)
    assert doc["complete"] is True and doc["path"] == str(small_profile)
    assert (doc["kernels"], doc["networks"]) == (len(prof.kernels), len(prof.networks))
