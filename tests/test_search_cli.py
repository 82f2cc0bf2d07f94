"""`na-toolkit search / report / export` through real subprocesses."""

import json
import re
import shutil
import subprocess
import sys

import onnx
import pytest
import torch

from conftest import layer_types
from na_toolkit.cli.main import main
from na_toolkit.ir.architecture import Architecture
from na_toolkit.store import STORE_FILE, SQLiteRunStore

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

CONFIG = """
name = "cli"
seed_network = "nb201"
dataset = "c10"
evaluations = 10
output = "runs"

[search]
per_round = 3
moves = ["set_edge_op"]

[strategy]
name = "evolution"
options = { population = 4, sample = 2 }

[evaluator]
name = "nb201-table"

[predictors]
accuracy = { name = "bayesian-ridge" }

[devices.pixel3]
device = "lat_pixel3"
time_model = "nb201-table"
budgets = { latency_ms = 10.0 }
"""


def cli(*args, cwd):
    p = subprocess.run(
        [sys.executable, "-m", "na_toolkit.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "search.toml").write_text(CONFIG)
    rc, out, err = cli("search", "search.toml", "--json", cwd=tmp)
    assert rc == 0, err[-3000:]
    summary = json.loads(out)
    return tmp, summary


def test_search_json_and_run_folder(finished_run):
    tmp, summary = finished_run
    run = tmp / "runs" / summary["run_id"]
    assert summary["status"] == "finished" and summary["counters"]["evaluations"] == 10
    for name in ("summary.json", "pareto.json", "pareto.png", "report.md", STORE_FILE):
        assert (run / name).is_file(), name
    best = summary["best"]["pixel3"]
    assert best is not None and best["metrics"]["latency_ms@pixel3"] <= 10.0
    folder = run / "best" / "pixel3"
    onnx.checker.check_model(onnx.load(str(folder / "model.onnx")))
    arch = Architecture.load(folder / "arch.json", layer_types())
    assert arch.hash == best["arch_hash"]
    arch.to_torch().load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    assert json.loads((run / "summary.json").read_text())["run_id"] == summary["run_id"]


def test_report_and_export(finished_run, tmp_path):
    tmp, summary = finished_run
    run = str(tmp / "runs" / summary["run_id"])
    rc, out, err = cli("report", run, cwd=tmp)
    assert rc == 0, err
    assert out.startswith(f"# Search run {summary['run_id']}") and "## Pareto set" in out
    assert "| latency pixel3 (ms, measured elsewhere) |" in out
    source = "- latency_ms@pixel3: measured elsewhere by the device's time_model nb201-table (table: HW-NAS-Bench"
    assert source in out and "pixel3: measured by its authors on a Google Pixel 3 phone, not here)" in out
    assert summary["metric_sources"]["latency_ms@pixel3"]["kind"] == "measured elsewhere"
    assert summary["best"]["pixel3"]["arch_hash"] in out
    c = summary["counters"]  # the strategy is asked more often than there are rounds: both are named
    assert f"strategy proposals: {c['proposed']} in {c['strategy_asks']} asks over {c['rounds']} rounds" in out
    rc, out, err = cli("report", run, "--json", cwd=tmp)
    assert rc == 0 and json.loads(out)["run_id"] == summary["run_id"]

    rc, out, err = cli(
        "export", run, "--device", "pixel3", "--format", "onnx", "--out", str(tmp_path / "m.onnx"), cwd=tmp
    )
    assert rc == 0, err
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    assert summary["best"]["pixel3"]["arch_hash"] in out
    # the same command in-process (a second subprocess would only re-import torch)
    assert main(["export", run, "--device", "pixel3", "--format", "torch", "--out", str(tmp_path / "m.pt")]) == 0
    arch = Architecture.load(tmp_path / "m.json", layer_types())
    arch.to_torch().load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))


def test_export_without_out_writes_into_the_folder_opened_not_the_stored_one(finished_run, tmp_path):
    """A copied run folder exports into the copy: the run_dir recorded in the store is never written to."""
    tmp, summary = finished_run
    original = tmp / "runs" / summary["run_id"]
    copy = tmp_path / "copied-run"
    shutil.copytree(original, copy)
    before = (original / "best" / "pixel3" / "model.onnx").stat().st_mtime_ns
    (copy / "best" / "pixel3" / "model.onnx").unlink()
    assert main(["export", str(copy), "--device", "pixel3", "--format", "onnx"]) == 0
    onnx.checker.check_model(onnx.load(str(copy / "best" / "pixel3" / "model.onnx")))
    assert (original / "best" / "pixel3" / "model.onnx").stat().st_mtime_ns == before


def test_cli_errors_are_one_line(finished_run, tmp_path):
    tmp, summary = finished_run
    run = str(tmp / "runs" / summary["run_id"])
    rc, out, err = cli("export", run, "--device", "pixle3", "--format", "onnx", cwd=tmp)
    assert rc == 2 and err.strip().splitlines()[-1].startswith("na-toolkit: error: run cli-")
    assert "has no device 'pixle3'; its devices: pixel3" in err
    rc, out, err = cli("report", str(tmp_path / "nothing"), cwd=tmp)
    assert rc == 2 and "no run folder" in err
    # an unfinished run: report says how to continue it
    with SQLiteRunStore.create(tmp_path / "r" / STORE_FILE, "r", {"seed_network": "nb201"}):
        pass
    rc, out, err = cli("report", str(tmp_path / "r"), cwd=tmp)
    assert rc == 2 and "was interrupted (it stopped without finishing)" in err and "--resume" in err
    # the command it gives is pasted into a shell as it is: a folder with a space is quoted
    with SQLiteRunStore.create(tmp_path / "my runs" / "r 1" / STORE_FILE, "r1", {"seed_network": "nb201"}):
        pass
    rc, out, err = cli("report", str(tmp_path / "my runs" / "r 1"), cwd=tmp)
    assert rc == 2 and f"`na-toolkit search --resume '{tmp_path / 'my runs' / 'r 1'}'`" in err
    assert f"(Python: `run_search(resume={str(tmp_path / 'my runs' / 'r 1')!r})`)" in err  # and as the call
    rc, out, err = cli("search", cwd=tmp)
    assert rc == 2 and "give a search config" in err


def test_resume_finished_run_from_cli_replays_it_and_prints_the_table(finished_run):
    tmp, summary = finished_run
    run = tmp / "runs" / summary["run_id"]
    rc, out, err = cli("search", "--resume", str(run), "--no-progress", cwd=tmp)
    assert rc == 0, err[-3000:]
    # the table's latencies were measured by HW-NAS-Bench's authors on a Pixel 3: not here, and not a model's
    assert f"Pareto set of run {summary['run_id']}" in out and "latency pixel3 (ms, measured elsewhere)" in out
    assert f"pixel3: best {summary['best']['pixel3']['arch_hash']}" in out
    assert re.search(r"pixel3: best \S+ .*, latency [0-9.]+ ms \(measured elsewhere\)", out)
    assert f"run folder: {run}" in out and "the evaluation budget (10) is spent" in out
    again = json.loads((run / "summary.json").read_text())
    assert again["counters"]["evaluations_replayed"] == 10 == again["counters"]["evaluations"]
    assert [e["arch_hash"] for e in again["evaluated"]] == [e["arch_hash"] for e in summary["evaluated"]]
    assert again["best"]["pixel3"]["arch_hash"] == summary["best"]["pixel3"]["arch_hash"]


def test_demo_runs_end_to_end_into_its_own_run_folder(tmp_path):
    # `make demo` on a budget of 2 evaluations: calibrates this CPU, measures the seed with ONNX Runtime,
    # searches and writes the run folder (a regression test: the demo once crashed on its own run folder)
    from na_toolkit.search.demo import run_demo

    lines: list[str] = []
    result = run_demo(tmp_path, evaluations=2, progress=False, echo=lines.append)
    assert result.counters.evaluations == 2 and result.counters.measurements == 2
    assert result.run_dir.parent == tmp_path and (result.run_dir / "local-cpu.toml").exists()
    assert any(line.startswith("run folder:") for line in lines)
    # the second run checks the folder only: on digits named (no dataset trial, the cheapest training)
    again = run_demo(tmp_path, evaluations=1, progress=False, echo=lambda _line: None, dataset="digits")
    assert again.run_dir != result.run_dir
