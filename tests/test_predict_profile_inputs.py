"""Saved predictors are reproducible (no unseeded model is saved or loaded), training networks that differ
in no feature are one DataError, hardware-model files honour the umask, and SIGTERM saves a partial
profile as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import default_toolkit, interruptible
from na_toolkit.errors import ProfileError
from na_toolkit.timemodels.hwmodel import load_hardware_model, read_hardware_model, save_hardware_model
from na_toolkit.timemodels.profile import DeviceProfile

REPO = Path(__file__).resolve().parents[1]


# ---- hardware-model files: written with the umask's mode, as every other output --------------------------
def test_saved_hardware_model_honours_the_umask(tmp_path):
    model = load_hardware_model("h100-sxm", default_toolkit().hardware)
    old = os.umask(0o022)
    try:
        path = save_hardware_model(model, tmp_path / "mine.toml")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert read_hardware_model(path).to_dict()["name"] == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]  # no temporary file left


# ---- SIGTERM during `profile`: saved and marked interrupted, like Ctrl-C ----------------------------------
def test_sigterm_saves_the_partial_profile_marked_interrupted(tmp_path):
    out = tmp_path / "partial.json"
    cmd = [sys.executable, "-m", "na_toolkit.cli.main", "profile", "--out", str(out), "--samples", "40"]
    cmd += ["--adaptive-rounds", "0", "--seed-net", "simple-cnn", "--quick", "--no-progress", "--max-moves", "3"]
    cmd += ["--json"]
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
                    pass
            time.sleep(0.05)
        assert proc.poll() is None, "the profile finished before it could be terminated"
        seen = len(DeviceProfile.load(out).networks)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.stopped == "interrupted", stderr
    assert seen <= len(partial.networks) < 40  # the measurements up to the signal are kept
    assert "SIGTERM again" in stderr
    assert '"interrupted"' in stdout  # --json still prints the summary


def test_profiler_restores_the_previous_signal_handlers():
    from na_toolkit.timemodels.profiler import ProfileBuilder

    def mine(signum, frame):  # pragma: no cover - never called
        pass

    old_int, old_term = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        prof = ProfileBuilder.__new__(ProfileBuilder)
        prof._bar = None
        prof._stop_reason = ""
        prof.log = lambda msg: None
        with prof._measuring():
            assert signal.getsignal(signal.SIGTERM) == prof._on_sigint
            assert signal.getsignal(signal.SIGINT) == prof._on_sigint
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert prof._stop_reason == "interrupted"
            with pytest.raises(KeyboardInterrupt):  # a second one stops now
                prof._on_sigint(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
