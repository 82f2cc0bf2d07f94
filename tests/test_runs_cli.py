"""`na-toolkit runs` and the run folder's `evaluations.jsonl` / `evaluations.csv`, through real subprocesses."""

import csv
import json
import os
import shutil
import socket

import pytest

from conftest import default_toolkit
from killed_run import cut_run
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.onnx_import import from_onnx
from na_toolkit.search import open_run
from na_toolkit.store import STORE_FILE, SQLiteRunStore
from na_toolkit.store.lock import RunLock
from test_search_cli import CONFIG as SEARCH_CLI_CONFIG
from test_search_cli import cli

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

# the CLI test's search, shorter
CONFIG = SEARCH_CLI_CONFIG.replace('name = "cli"', 'name = "runs-cli"').replace("evaluations = 10", "evaluations = 8")
assert "evaluations = 8" in CONFIG


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    (tmp / "search.toml").write_text(CONFIG)
    rc, out, err = cli("search", "search.toml", "--json", cwd=tmp)
    assert rc == 0, err[-3000:]
    return tmp, json.loads(out)


def test_evaluations_files_hold_every_evaluation_with_metrics_and_architecture(finished):
    tmp, summary = finished
    run = tmp / "runs" / summary["run_id"]
    lines = (run / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == 8
    rows = [json.loads(line) for line in lines]
    by_hash = {e["arch_hash"]: e for e in summary["evaluated"]}
    for row in rows:
        expected = by_hash[row["arch_hash"]]
        assert row["accuracy"] == expected["metrics"]["accuracy"]
        assert row["latency_ms@pixel3"] == expected["metrics"]["latency_ms@pixel3"]
        assert row["arch"]["nodes"] and row["origin"] == expected["origin"]
        # NAS-Bench-201's latencies are others' measurements, looked up (summary.json's metric_sources)
        assert row["latency_ms@pixel3_source"] == "measured elsewhere by time_model nb201-table"
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    with open(run / "evaluations.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["arch_hash"] for r in table] == [r["arch_hash"] for r in rows]
    assert float(table[0]["accuracy"]) == rows[0]["accuracy"]
    assert json.loads(table[0]["arch"]) == rows[0]["arch"]
    assert [r["latency_ms@pixel3_source"] for r in table] == [r["latency_ms@pixel3_source"] for r in rows]
    assert summary["outputs"]["evaluations_jsonl"].endswith("evaluations.jsonl")


def test_predict_fit_reads_a_runs_evaluations_directly(finished, tmp_path):
    tmp, summary = finished
    run = tmp / "runs" / summary["run_id"]
    # a failed evaluation's row (an error, no metrics) is left out with a warning, in either file
    lines = (run / "evaluations.jsonl").read_text().splitlines()
    failed = {k: v for k, v in json.loads(lines[1]).items() if k not in ("accuracy", "reward")}
    (tmp_path / "e.jsonl").write_text("\n".join([*lines, json.dumps({**failed, "error": "RuntimeError: boom"})]))
    with open(run / "evaluations.csv", newline="") as f:
        table = list(csv.DictReader(f))
    table.append({**table[1], "accuracy": "", "reward": "", "error": "RuntimeError: boom"})
    with open(tmp_path / "e.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    models = {}
    for data in (run / "evaluations.jsonl", run / "evaluations.csv", tmp_path / "e.jsonl", tmp_path / "e.csv"):
        out = tmp_path / f"{data.parent.name}-{data.name}.model.json"
        rc, _out, err = cli(
            "predict", "fit", "--data", str(data), "--target", "accuracy", "--predictor", "bayesian-ridge",
            "--out", str(out), cwd=tmp,
        )  # fmt: skip
        assert rc == 0, err
        assert ("left out 1 failed evaluation" in err) == (data.parent == tmp_path), err
        models[data.name] = json.loads(out.read_text())
    # the same 8 rows, the same model, from each file
    assert {m["n_train"] for m in models.values()} == {8}
    assert len({json.dumps(m["state"], sort_keys=True) for m in models.values()}) == 1


def test_runs_lists_the_run_with_status_count_and_best(finished):
    tmp, summary = finished
    rc, out, err = cli("runs", "--json", cwd=tmp)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["folder"] == "runs"
    (row,) = doc["runs"]
    assert row["run_id"] == summary["run_id"] and row["status"] == "finished" and row["evaluations"] == 8
    best = summary["best"]["pixel3"]
    assert row["best"]["pixel3"] == {"accuracy": best["metrics"]["accuracy"], "arch_hash": best["arch_hash"]}
    rc, out, err = cli("runs", cwd=tmp)
    assert rc == 0 and summary["run_id"] in out and "finished" in out and "pixel3" in out


def test_runs_tells_live_interrupted_and_unreadable_runs_apart(tmp_path):
    runs = tmp_path / "runs"
    for name in ("live", "stopped"):
        SQLiteRunStore.create(runs / name / STORE_FILE, name, {"name": name}).close()
    (runs / "broken").mkdir()
    (runs / "broken" / STORE_FILE).write_bytes(b"SQLite format 3\x00" + b"\x07" * 500)
    with RunLock(runs / "live"):
        rc, out, err = cli("runs", "runs", "--json", cwd=tmp_path)
    assert rc == 0, err
    rows = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert rows["live"]["status"] == "running"
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in rows["live"]["writer"]
    assert rows["stopped"]["status"] == "interrupted"
    assert rows["broken"]["status"] == "unreadable" and rows["broken"]["error"]


def test_runs_of_a_missing_folder_is_a_one_line_error(tmp_path):
    rc, out, err = cli("runs", "nowhere", cwd=tmp_path)
    assert rc == 2 and "no folder 'nowhere'" in err and "Traceback" not in err


def test_verbose_and_log_file_show_one_line_per_round_quiet_shows_none(tmp_path):
    (tmp_path / "search.toml").write_text(CONFIG.replace('name = "runs-cli"', 'name = "logged"'))
    # flags before and after the command alike
    rc, out, err = cli("--log-file", "search.log", "search", "search.toml", "--no-progress", "-v", cwd=tmp_path)
    assert rc == 0, err
    rounds = [line for line in err.splitlines() if line.startswith("na-toolkit: round ")]
    # round 0 evaluates the seed, then rounds of 3 (per_round) until the 8 evaluations are spent
    assert len(rounds) == 4 and "from seed x1" in rounds[0] and "8/8 of the budget" in rounds[-1]
    assert "from evolution x3; last moves set_edge_op x3" in rounds[1]
    logged = (tmp_path / "search.log").read_text().splitlines()
    assert sum(" INFO na_toolkit.search: round " in line for line in logged) == 4
    rc, out, err = cli("search", "search.toml", "--no-progress", "--quiet", "--output", "quiet", cwd=tmp_path)
    assert rc == 0 and "round" not in err
    rc, out, err = cli("-q", "runs", "-v", cwd=tmp_path)
    assert rc == 2 and "--verbose and --quiet" in err
    rc, out, err = cli("runs", "--log-file", str(tmp_path / "no" / "such" / "x.log"), cwd=tmp_path)
    assert rc == 2 and "--log-file" in err and "Traceback" not in err


def test_report_names_files_relative_to_the_run_folder(finished):
    tmp, summary = finished
    run = tmp / "runs" / summary["run_id"]
    report = (run / "report.md").read_text()
    files = report[report.index("## Files") :]
    assert str(tmp) not in files and "- evaluations_jsonl: `evaluations.jsonl`" in files
    assert "- best.pixel3: `best/pixel3`" in files


def test_report_of_a_run_a_live_search_writes_says_wait_not_resume(tmp_path):
    folder = tmp_path / "runs" / "live"
    SQLiteRunStore.create(folder / STORE_FILE, "live", {"name": "live"}).close()
    with RunLock(folder):
        rc, out, err = cli("report", str(folder), cwd=tmp_path)
    assert rc == 2 and "still being written by a live search" in err and "--resume" not in err
    rc, out, err = cli("report", str(folder), cwd=tmp_path)  # the writer is gone: now resuming is the advice
    assert rc == 2 and "--resume" in err


def test_export_any_evaluated_network_by_hash_prefix_with_json(finished):
    tmp, summary = finished
    run = tmp / "runs" / summary["run_id"]
    target = summary["evaluated"][-1]["arch_hash"]
    rc, out, err = cli("export", str(run), "--arch", target[:8], "--format", "onnx", "--json", cwd=tmp)
    assert rc == 0, err
    info = json.loads(out)
    folder = run / "exports" / target
    assert info["arch_hash"] == target
    assert info["files"] == [str(folder / "model.onnx"), str(folder / "model.preprocessing.json")]
    # the file is the network the prefix names: it imports as that network's own ONNX does (an NB201 cell's
    # identity edges leave no op in an export, so not to the same hash; docs/architecture.md)
    lt = default_toolkit().layer_types
    with SQLiteRunStore.open(run) as store:
        arch = Architecture.from_json(store.evaluation(target).arch_json, lt)
    assert from_onnx(folder / "model.onnx", lt).hash == from_onnx(arch.to_onnx(), lt).hash
    rc, out, err = cli("export", str(run), "--arch", "zzzzzzzz", "--format", "onnx", cwd=tmp)
    assert rc == 2 and "no network of run" in err
    rc, out, err = cli("export", str(run), "--arch", target[:8], "--device", "pixel3", "--format", "onnx", cwd=tmp)
    assert rc == 2 and "not allowed with argument" in err


def _store(folder, name, status, accuracies=()):
    """A run store as a search leaves it: `accuracies` stored as evaluations (None: a failed one)."""
    store = SQLiteRunStore.create(folder / STORE_FILE, name, {"name": name})
    for i, acc in enumerate(accuracies):
        metrics = {} if acc is None else {"accuracy": acc}
        store.add_evaluation(f"h{i:04d}", {"nodes": []}, metrics, {}, 0, 1.0, error=None if metrics else "boom")
    store.set_status(status)
    store.close()


def test_runs_table_names_the_writer_the_best_so_far_and_where_a_failure_is(tmp_path):
    runs = tmp_path / "runs"
    _store(runs / "live", "live", "running", [0.5])
    _store(runs / "stopped", "stopped", "running", [0.801, None, 0.912, float("nan"), 0.85])
    _store(runs / "broke", "broke", "failed", [0.7])
    _store(runs / "empty", "empty", "running")
    with RunLock(runs / "live"):
        rc, out, err = cli("runs", "runs", cwd=tmp_path)
        rc_json, out_json, _ = cli("runs", "runs", "--json", cwd=tmp_path)
    assert rc == 0 == rc_json, err
    lines = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in os.listdir(runs)}
    assert f"running (pid {os.getpid()} on host {socket.gethostname()})" in lines["live"]
    # an interrupted run: the best valid accuracy stored (not the failed or NaN ones), marked as so far
    assert "interrupted" in lines["stopped"] and "91.20% (so far)" in lines["stopped"]
    assert "interrupted" in lines["empty"] and lines["empty"].split()[3] == "-"
    assert "failed" in lines["broke"] and "70.00% (so far)" in lines["broke"]
    assert "failed (broke): the run's store records no reason; it is what the search printed on stderr" in out
    assert "--log-file" in out and "search --resume RUN" in out
    rows = {r["name"]: r for r in json.loads(out_json)["runs"]}
    assert rows["stopped"]["best_so_far"] == {"accuracy": 0.912, "arch_hash": "h0002"}
    assert rows["empty"]["best_so_far"] is None and "reason" in rows["broke"] and "reason" not in rows["live"]
    # these stores hold no search config, so their evaluations cannot be ranked per device: said, not hidden
    assert rows["stopped"]["best"] == {} and rows["stopped"]["best_is_so_far"] is False
    assert "ConfigError" in rows["stopped"]["unranked"] and "seed_network" in rows["stopped"]["unranked"]
    assert "(so far) without a device: the best valid accuracy" in out


def test_runs_shows_folder_names_a_copy_apart_and_lists_a_run_folder_itself(finished):
    tmp, summary = finished
    runs = tmp / "copies"
    shutil.copytree(tmp / "runs" / summary["run_id"], runs / summary["run_id"])
    shutil.copytree(tmp / "runs" / summary["run_id"], runs / "renamed")
    rc, out, err = cli("runs", "copies", cwd=tmp)
    assert rc == 0, err
    rows = [line for line in out.splitlines() if "finished" in line]
    assert len(rows) == 2 and len(set(rows)) == 2
    assert any(line.startswith(f"renamed (run id {summary['run_id']})") for line in rows), out
    assert any(line.startswith(f"{summary['run_id']} ") for line in rows), out
    # `runs RUN`: that one run, not "no runs in RUN"
    rc, out, err = cli("runs", str(runs / "renamed"), "--json", cwd=tmp)
    assert rc == 0, err
    (row,) = json.loads(out)["runs"]
    assert row["name"] == "renamed" and row["run_id"] == summary["run_id"] and row["evaluations"] == 8
    rc, out, err = cli("runs", str(runs / "renamed"), cwd=tmp)
    assert rc == 0 and "no runs in" not in out and "renamed (run id" in out and "pixel3: " in out


def test_runs_of_a_missing_folder_names_the_config_key_and_the_log_file_keeps_the_error(tmp_path):
    rc, out, err = cli("--log-file", "cli.log", "runs", "/nonexist", cwd=tmp_path)
    assert rc == 2 and "(output)" in err and "search.output" not in err
    logged = (tmp_path / "cli.log").read_text()
    assert " ERROR na_toolkit: error: no folder '/nonexist'" in logged


def _cut(run, dest, stored, scored):
    """A copy of the finished `run` as a kill leaves it: `stored` evaluations in its store, the first `scored`
    in its evaluations.jsonl (the search rewrites the file after each batch it scores). Returns the open
    connection to its store (committed), for more changes."""
    conn = cut_run(run, dest, stored)
    lines = (run / "evaluations.jsonl").read_text().splitlines(keepends=True)[:scored]
    (dest / "evaluations.jsonl").write_text("".join(lines))
    return conn


def _files(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_runs_ranks_an_unfinished_runs_evaluations_per_device_as_open_run_does(finished):
    tmp, summary = finished
    run = tmp / "runs" / summary["run_id"]
    feasible = [e["feasible_for"]["pixel3"] for e in summary["evaluated"]]
    # the seed breaks the latency budget and a later network meets it: a cut after it has a best so far
    assert not feasible[0] and any(feasible), feasible
    scored = feasible.index(True) + 1
    folder = tmp / "unfinished"
    _cut(run, folder / "partial", scored + 1, scored).close()  # its last evaluation is not scored yet
    _cut(run, folder / "seed-only", 1, 1).close()
    conn = _cut(run, folder / "crashed", scored, scored)
    conn.execute("UPDATE runs SET status = 'failed'")
    failure = '{"error": "OSError: disk"}'
    conn.execute("INSERT INTO artifacts VALUES (?, 'failure', ?, 0.0)", (summary["run_id"], failure))
    conn.commit()
    conn.close()
    _cut(run, folder / "torn", 2, 2).close()
    with open(folder / "torn" / "evaluations.jsonl", "a") as f:
        f.write('{"seq": 2, "arch_hash"\n')  # not a row: ranking it fails, the listing does not
    with RunLock(folder / "partial"):  # a live search writes it: read beside it, without its lock
        before = _files(folder)
        rc, out, err = cli("runs", "unfinished", cwd=tmp)
        rc_json, out_json, err_json = cli("runs", "unfinished", "--json", cwd=tmp)
        assert _files(folder) == before  # read only: no file changed, none left beside the stores
    assert rc == 0 == rc_json, err + err_json
    rows = {r["name"]: r for r in json.loads(out_json)["runs"]}
    lines = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in rows}

    # the best so far per device is open_run(unfinished=True)'s: the same evaluations, the same ranking
    toolkit = default_toolkit()
    for name in ("partial", "crashed", "seed-only"):
        ranked = open_run(folder / name, unfinished=True, toolkit=toolkit)
        best = ranked.best["pixel3"]
        expected = None if best is None else {"accuracy": ranked.get(best).score.metrics["accuracy"], "arch_hash": best}
        assert rows[name]["best"] == {"pixel3": expected} and rows[name]["best_is_so_far"] is True, rows[name]
        assert "unranked" not in rows[name]
    top = rows["partial"]["best"]["pixel3"]
    assert top["arch_hash"] == summary["evaluated"][scored - 1]["arch_hash"]  # the one feasible network scored
    assert f"pixel3: {100 * top['accuracy']:.2f}% (so far)" in lines["partial"], out
    assert rows["partial"]["status"] == "running" and rows["partial"]["writer"].startswith(f"pid {os.getpid()} ")
    assert "pixel3: none feasible yet" in lines["seed-only"] and rows["seed-only"]["best"] == {"pixel3": None}
    assert "failed" in lines["crashed"] and f"pixel3: {100 * top['accuracy']:.2f}% (so far)" in lines["crashed"]
    assert "failed (crashed (run id" in out and "OSError: disk" in out
    assert "DEVICE: ACCURACY (so far): the best feasible network per device" in out
    # the torn run falls back to the best valid accuracy stored, with why it is not ranked
    torn = rows["torn"]
    assert torn["status"] == "interrupted" and torn["best"] == {} and torn["best_is_so_far"] is False
    assert "evaluations.jsonl line 3 is not an evaluation row" in torn["unranked"]
    accuracy = max(e["metrics"]["accuracy"] for e in summary["evaluated"][:2])
    assert torn["best_so_far"]["accuracy"] == accuracy and f"{100 * accuracy:.2f}% (so far)" in lines["torn"]
    # kept for compatibility: the most accurate valid evaluation stored, feasible or not (the seed's here)
    assert rows["seed-only"]["best_so_far"]["arch_hash"] == summary["evaluated"][0]["arch_hash"]


def test_exporting_a_devices_best_into_the_run_writes_the_files_the_search_wrote_there(finished, tmp_path):
    # before: model.json and model.preprocessing.json beside the search's own arch.json and preprocessing.json
    tmp, summary = finished
    run = tmp_path / summary["run_id"]
    shutil.copytree(tmp / "runs" / summary["run_id"], run)
    best = run / "best" / "pixel3"
    written = sorted(p.name for p in best.iterdir())
    assert written == ["arch.json", "model.onnx", "model.pt", "preprocessing.json"]
    for fmt in ("onnx", "torch"):
        rc, out, err = cli("export", str(run), "--device", "pixel3", "--format", fmt, "--json", cwd=tmp)
        assert rc == 0, err
        files = json.loads(out)["files"]
        assert files[0] == str(best / ("model.onnx" if fmt == "onnx" else "model.pt"))
        assert files[-1] == str(best / "preprocessing.json") and (fmt == "onnx" or files[1] == str(best / "arch.json"))
    assert sorted(p.name for p in best.iterdir()) == written


def test_report_names_the_run_files_that_are_gone_and_how_to_write_them_again(finished, tmp_path):
    # before: exit 0 without a word, report.md still listing the deleted files
    tmp, summary = finished
    run = tmp_path / summary["run_id"]
    shutil.copytree(tmp / "runs" / summary["run_id"], run)
    for name in ("summary.json", "report.html", "evaluations.csv"):
        (run / name).unlink()
    rc, out, err = cli("report", str(run), cwd=tmp)
    assert rc == 0 and "# Search run" in out, err
    assert "warning: run files missing from" in err and f"--resume {run}" in err
    assert all(name in err for name in ("summary.json", "report.html", "evaluations.csv")) and "report.md" not in err
