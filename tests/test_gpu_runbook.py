"""benchmarks/gpu_latency.sh, the runbook of issue 13's GPU figures, run here as its `--no-install --device
cpu` mode runs it: a GPU session has 15 minutes in all, so a renamed option or a broken step must show on the
CPU, not cost a lent machine's time. With a complete profile already there it skips the profile and runs
`bench latency` on it (a few held-out networks, one pass)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_latency.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the runbook is a bash script")


def _run(*args: str, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env},
    )


def test_without_a_step_it_says_its_usage_and_exits_2(tmp_path):
    res = _run(out=tmp_path)
    assert res.returncode == 2 and "usage: benchmarks/gpu_latency.sh prepare | stage | run" in res.stderr
    res = _run("run", "--no-install", "--devcie", "cpu", out=tmp_path)
    assert res.returncode == 2 and "unknown argument --devcie" in res.stderr


@pytest.mark.slow
def test_on_the_cpu_with_a_complete_profile_it_writes_the_record_and_its_dump(tmp_path):
    shutil.copy(ROOT / "profiles" / "example-cpu.json", tmp_path / "gpu-profile-ort.json")
    res = _run(
        "run", "--no-install", "--device", "cpu", out=tmp_path, GPU_LATENCY_HELDOUT="10", GPU_LATENCY_REPEATS="1"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "bench latency:" in res.stderr and f"wrote {tmp_path}/latency-h200-ort.json" in res.stderr
    record = json.loads((tmp_path / "latency-h200-ort.json").read_text())
    assert record["params"]["device"] == "cpu" and record["params"]["heldout"] == 10
    assert record["heldout"]["networks"] == 10 and 0.0 <= record["learned"]["within_10pct"] <= 1.0
    assert record["source"]["command"].startswith("na-toolkit bench latency --device cpu --profile ")
    dump = json.loads((tmp_path / "latency-h200-ort-dump.json").read_text())
    assert dump  # the per-network figures a later analysis reads
