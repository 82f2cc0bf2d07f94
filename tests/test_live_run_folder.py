"""What an operator may do to the folder of a live search (a real `na-toolkit search` with a pool of 2
workers): move or delete it, or leave no room for its outputs. The run stops with one error line saying what
happened and how to go on, pays for nothing more, leaves no worker behind, never writes its outputs into a
new folder at the old path; a moved run resumes where it is now; outputs that cannot be written are one error,
and a resume writes them."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SMALL_SEARCH, config_doc
from na_toolkit.bench import faults as F
from na_toolkit.cli.main import main
from na_toolkit.errors import DataError, StoreError
from na_toolkit.search import run_search
from na_toolkit.search.evaluations_file import evaluation_rows
from na_toolkit.search.progress import SearchCallback
from na_toolkit.store import SQLiteRunStore

#: how long a live search may take to finish its remaining evaluations and exit: a guard against a hang, not
#: a speed figure (a loaded 2-core machine running two test processes needed over 60 s)
EXIT_S = 180.0


def _live_search(work: Path) -> tuple[F.Bench, object, Path, Path]:
    """A search of 8 evaluations, returned once it stored its second one (its workers train the next)."""
    bench = F.make_bench(work, evaluations=8, workers=2)
    proc, out = bench.search("runs")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(F.stored_rows(F.run_folder(out))) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    run = F.run_folder(out)
    assert run is not None
    return bench, proc, out, run


def _ended(bench: F.Bench, proc) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=EXIT_S)
    except Exception:
        os.kill(proc.pid, signal.SIGKILL)
        bench.cleanup()
        raise
    left = bench.orphans()
    bench.cleanup()
    assert not left, f"processes {left} outlived the search"
    return proc.returncode, err


@pytest.mark.slow
def test_a_run_folder_moved_under_a_live_search_stops_it_and_it_resumes_where_it_is(tmp_path):
    bench, proc, out, run = _live_search(tmp_path)
    moved = run.with_name(run.name + "-moved")
    run.rename(moved)
    rc, err = _ended(bench, proc)
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"na-toolkit: error: run folder {str(run)!r} was moved to {str(moved)!r}"), err
    assert f"`na-toolkit search --resume {moved}` (Python: `run_search(resume={str(moved)!r})`)" in last
    assert "Traceback" not in err
    assert "the run keeps its" not in err  # no hint naming the old path
    assert not run.exists()  # no outputs in a new folder at the old path
    kept = F.stored_rows(moved)
    assert 2 <= len(kept) < 8  # stopped at once, not after the budget
    assert F.stored_run(moved)[0] == "failed"
    rc, summary, err = F.finish(bench.resume(moved))
    assert rc == 0 and summary is not None, err
    assert summary["counters"]["evaluations_replayed"] == len(kept)
    assert set(kept) <= set(F.stored_rows(moved)) and (moved / "summary.json").is_file()


@pytest.mark.slow
def test_a_run_folder_deleted_under_a_live_search_stops_it_at_once(tmp_path):
    bench, proc, out, run = _live_search(tmp_path)
    shutil.rmtree(run)
    rc, err = _ended(bench, proc)
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"na-toolkit: error: run folder {str(run)!r} was deleted while the search ran"), err
    assert "--resume" not in err and "Traceback" not in err
    assert not run.exists()


@pytest.mark.slow
def test_a_deleted_run_lock_lets_no_second_writer_in_and_the_search_goes_on(tmp_path, toolkit):
    """`run.lock` deleted by hand under a live search: a resume is still refused, naming the live search's
    PID and how to stop it (the lock is on the run folder itself), and the search goes on, writes the file
    again and finishes (it is not taken for a deleted run folder)."""
    from na_toolkit.cli.runs import describe_run

    bench, proc, out, run = _live_search(tmp_path)
    os.kill(proc.pid, signal.SIGSTOP)  # a paused holder keeps its lock, as a busy one does
    try:
        (run / "run.lock").unlink()
        kept = F.stored_rows(run)
        rc, _, err = F.finish(bench.resume(run))
        assert describe_run(run, toolkit)["writer"].startswith(f"pid {proc.pid} on host ")  # `runs`: not interrupted
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert f"being written by another search (pid {proc.pid} on host " in last, err
    assert f"`kill {proc.pid}`" in last and f"`na-toolkit search --resume {run}`" in last, err
    assert F.stored_rows(run)[: len(kept)] == kept  # the refused resume touched nothing
    rc, err = _ended(bench, proc)
    assert rc == 0, err
    assert F.stored_run(run)[0] == "finished" and len(F.stored_rows(run)) == 8
    assert (run / "run.lock").read_text().startswith(f"pid {proc.pid} on host ")  # named again as it went on


class _DeleteStore(SearchCallback):
    """Deletes the run's store file (and its WAL) as the first evaluation is stored, as `rm` by hand would."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen = 0

    def on_evaluation(self) -> None:
        self.seen += 1
        if self.seen == 1:
            (run,) = self.out.iterdir()
            for f in run.glob("store.sqlite*"):
                f.unlink()


def test_a_store_deleted_under_a_live_search_stops_it_at_the_next_evaluation(tmp_path, toolkit):
    """Its evaluations would be paid for and go nowhere (the open store is an unlinked file): one error, no
    more evaluations, and no resume hint (there is nothing to resume)."""
    out = tmp_path / "runs"
    deleting = _DeleteStore(out)
    with pytest.raises(StoreError, match=r"run store '.*store\.sqlite' was deleted or replaced while the search ran"):
        run_search(config_doc(SMALL_SEARCH, out, evaluations=6), progress=False, toolkit=toolkit, callbacks=[deleting])
    assert deleting.seen == 1
    (run,) = out.iterdir()
    assert not (run / "summary.json").exists()


class _BlockOutputs(SearchCallback):
    """Puts a file where the run's `best/` folder goes as the loop ends: its outputs cannot be written."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_end(self) -> None:
        (run,) = self.out.iterdir()
        (run / "best").write_text("in the way")


def test_outputs_that_cannot_be_written_are_one_error_and_a_resume_writes_them(tmp_path, toolkit):
    out = tmp_path / "runs"
    doc = config_doc(SMALL_SEARCH, out)
    blocked = r"cannot write the outputs of run .* into '.*': Not a directory \(.*best/cpu\); .* resume"
    with pytest.raises(StoreError, match=blocked):
        run_search(doc, progress=False, toolkit=toolkit, callbacks=[_BlockOutputs(out)])
    (run,) = out.iterdir()
    with SQLiteRunStore.open(run) as store:
        assert store.run().status == "failed" and store.count_evaluations() == 1
    (run / "best").unlink()
    result = run_search(None, resume=run, progress=False, toolkit=toolkit)
    assert result.counters.evaluations_replayed == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    exported = json.loads((run / "best" / "cpu" / "preprocessing.json").read_text())
    assert re.match(r"[0-9a-f]{16}$", exported["arch_hash"])


# ---- the evaluations files while the search runs ---------------------------------------------------------
@pytest.mark.slow
def test_a_live_runs_evaluations_files_hold_whole_lines_of_stored_evaluations_and_fit(tmp_path):
    """`evaluations.jsonl` / `.csv` are kept up to date as the run goes: complete lines, each a stored evaluation,
    readable by `predict fit --data` mid-run; a run stopped with SIGTERM keeps them."""
    bench = F.make_bench(tmp_path, evaluations=30, workers=2)
    proc, out = bench.search("runs")
    jsonl = None
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        run = F.run_folder(out)
        jsonl = run / "evaluations.jsonl" if run else None
        if jsonl and jsonl.is_file() and len(jsonl.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None and jsonl is not None, proc.communicate()[1][-3000:]
    text = jsonl.read_text()
    assert text.endswith("\n")
    rows = [json.loads(line) for line in text.splitlines()]
    stored = [h for _, h, _, _ in F.stored_rows(jsonl.parent)]  # by when each finished; rows: as proposed
    assert {r["arch_hash"] for r in rows} <= set(stored) and len(rows) <= len(stored)
    # the CSV is written before the JSONL: it holds at least the JSONL's evaluations (the run goes on meanwhile)
    with (jsonl.parent / "evaluations.csv").open(newline="") as f:
        csv_hashes = [r["arch_hash"] for r in csv.DictReader(f)]
    assert {r["arch_hash"] for r in rows} <= set(csv_hashes) and len(csv_hashes) >= len(rows)
    fit = bench.start("predict", "fit", "--data", str(jsonl), "--target", "accuracy", "--out", str(tmp_path / "m.json"))
    rc, _, err = F.finish(fit)
    assert rc == 0 and (tmp_path / "m.json").is_file(), err
    rc, _, err = F.finish(bench.start("report", str(jsonl.parent)))  # no report yet: where the rows are
    # all of them there, or "N of its M evaluations are in ... (written after each round)" as a round goes
    assert rc == 2 and (f"its evaluations so far are in {jsonl}" in err or f"evaluations are in {jsonl}" in err), err
    os.kill(proc.pid, signal.SIGTERM)
    rc, err = _ended(bench, proc)
    assert rc == 143, err
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 3 <= len(rows) <= len(F.stored_rows(jsonl.parent))


class _StopAfterBatch(SearchCallback):
    def on_evaluated(self, evaluated) -> None:
        raise KeyboardInterrupt


class _FirstRows(SearchCallback):
    """The run folder's evaluations.jsonl as the first batch of evaluations leaves it (the folder's own callback,
    which writes it, comes first)."""

    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, None

    def on_evaluated(self, evaluated) -> None:
        if self.rows is None:
            (run,) = self.out.iterdir()
            self.rows = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]


def test_a_killed_resume_of_a_finished_run_leaves_its_evaluations_files_as_they_were(tmp_path, toolkit):
    """The replay of stored evaluations never rewrites them (a shorter file would replace the complete one).
    The same search (one search for two tests' worth: each costs torch training) checks that the files name
    each device figure's source."""
    out = tmp_path / "runs"
    first = _FirstRows(out)
    result = run_search(
        config_doc(SMALL_SEARCH, out, evaluations=3), progress=False, toolkit=toolkit, callbacks=[first]
    )
    run = Path(result.run_dir)
    # each device figure names its source, in the files kept up to date as the run goes and in the final ones
    # (they named none: which model gave a latency was only in summary.json and the reports)
    assert first.rows and first.rows[0]["latency_ms@cpu_source"] == "estimated by time_model roofline"
    with open(run / "evaluations.csv", newline="") as f:
        header, *table = list(csv.reader(f))
    at = header.index("latency_ms@cpu")
    assert header[at + 1] == "latency_ms@cpu_source" and "accuracy_source" not in header
    assert {r[at + 1] for r in table} == {"estimated by time_model roofline"}
    # a row without the figure (a failed evaluation) has no source for it
    e = result.evaluated[0]
    failed = dataclasses.replace(e, score=dataclasses.replace(e.score, metrics={"latency_ms@cpu": None}))
    sources = json.loads((run / "summary.json").read_text())["metric_sources"]
    (row,) = evaluation_rows([failed], sources)
    assert row["latency_ms@cpu"] is None and "latency_ms@cpu_source" not in row
    # a metric named like a source column would be overwritten by it: refused
    clash = dataclasses.replace(e, score=dataclasses.replace(e.score, metrics={"latency_ms@cpu_source": 1.0}))
    with pytest.raises(DataError, match=r"\['latency_ms@cpu_source'\] clash with the columns"):
        evaluation_rows([clash], sources)
    before = {name: (run / name).read_bytes() for name in ("evaluations.jsonl", "evaluations.csv")}
    with pytest.raises(KeyboardInterrupt):
        run_search(None, resume=run, progress=False, toolkit=toolkit, callbacks=[_StopAfterBatch()])
    assert {name: (run / name).read_bytes() for name in before} == before


# ---- a run in a folder that cannot be written -------------------------------------------------------------
@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """`folder` and its files as an archive or a read-only mount gives them: chmod for a user, the immutable
    attribute for root (whom modes do not stop)."""
    paths = [folder, *folder.rglob("*")]
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "-R", "+i", str(folder)]).returncode:
            pytest.skip("root, and no chattr +i here to make a folder read-only")
    else:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-R", "-i", str(folder)], check=True)
        else:
            for p in paths:
                p.chmod(0o755 if p.is_dir() else 0o644)


def test_runs_report_and_export_read_a_finished_run_in_a_read_only_folder(tmp_path, toolkit, capsys):
    """Readers open the store read-only: an archived run is listed, reported and exported, not `unreadable`."""
    result = run_search(config_doc(SMALL_SEARCH, tmp_path / "runs", evaluations=2), progress=False, toolkit=toolkit)
    run = Path(result.run_dir)
    best = result.best["cpu"]
    capsys.readouterr()
    with _read_only(run):
        assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["runs"]
        assert row["status"] == "finished" and row["evaluations"] == 2 and "error" not in row
        assert main(["report", str(run)]) == 0
        out, err = capsys.readouterr()
        assert f"# Search run {result.run_id}" in out and "report.md not rewritten" in err
        assert main(["export", str(run), "--arch", best, "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 0
        # a resume writes: refused with what to do instead, not a PermissionError traceback
        assert main(["search", "--resume", str(run), "--no-progress"]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f"na-toolkit: error: cannot write run {result.run_id}: its folder {str(run)!r} is not ")
        assert f"`cp -r {run} COPY` and `na-toolkit search --resume COPY` (Python: `run_search(resume=COPY)`)" in line
    assert (tmp_path / "b.onnx").is_file()
    with SQLiteRunStore.open(run) as store:
        assert store.run().status == "finished" and store.count_evaluations() == 2
