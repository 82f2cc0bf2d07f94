"""na_toolkit used as a library, in a script or a notebook: what its objects print, what its errors say, and
that using it leaves the caller's global state (torch's RNG) alone."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import na_toolkit
from conftest import NB201_SEARCH, config_doc, default_toolkit
from na_toolkit.datasets import dataset_from_arrays
from na_toolkit.errors import ConfigError, NAToolkitError, StoreError, UnknownNetworkError
from na_toolkit.evaluation import make_evaluator
from na_toolkit.ir.architecture import Architecture
from na_toolkit.search import SearchCallback, SearchResult, open_run, run_search
from na_toolkit.search.summary import Evaluated
from na_toolkit.timemodels import TimeModel, get_time_model
from na_toolkit.timemodels.hwmodel import load_hardware_model


class _ReadWhileRunning(SearchCallback):
    """Opens the run as it is written, once a batch past the seed is in (`open_run(unfinished=True)` from
    inside the search: its lock held, its store open for writing): what it read, and the evaluations the
    search held at that moment."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.read: tuple[list[Evaluated], SearchResult, list[str]] | None = None

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:
        if self.read is None and len(evaluated) > 1:
            (folder,) = self.output.iterdir()
            before = sorted(p.name for p in folder.iterdir())
            self.read = (list(evaluated), open_run(folder, unfinished=True, toolkit=default_toolkit()), before)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[SearchResult, _ReadWhileRunning]:
    """A small finished search on the NAS-Bench-201 table (ground truth for free), with its run folder (its
    store: the reports and tables are left out, they cost more than the search), read once while it ran."""
    out = tmp_path_factory.mktemp("runs")
    # random: no controller to train; a hard latency budget the first network breaks (Score.hard_violations)
    doc = config_doc(
        NB201_SEARCH,
        out,
        evaluations=5,
        strategy={"name": "random"},
        devices__pixel3__budgets={"latency_ms": {"limit": 8.0, "hard": True}},
    )
    reader = _ReadWhileRunning(out)
    result = run_search(doc, toolkit=default_toolkit(), progress=False, outputs=False, callbacks=[reader])
    return result, reader


@pytest.fixture(scope="module")
def finished(searched) -> SearchResult:
    return searched[0]


def test_a_search_result_prints_one_short_line_however_many_evaluations(finished):
    text = repr(finished)
    assert "\n" not in text and len(text) < 300, text
    assert finished.run_id in text and f"{len(finished.evaluated)} evaluated" in text
    best = finished.best["pixel3"]
    assert best is not None and best in text
    row = repr(finished.evaluated[0])
    # the evaluator's whole result and the candidate's moves stay out; the hash, reward and metrics stay in
    assert "\n" not in row and len(row) < 300, row
    assert finished.evaluated[0].hash in row and "accuracy=" in row and "latency_ms@pixel3=" in row


def test_a_search_result_gives_its_evaluations_as_rows_of_plain_values(finished):
    rows = finished.rows()
    assert [r["arch_hash"] for r in rows] == [e.hash for e in finished.evaluated]
    first = rows[0]
    assert first["origin"] == "seed"
    assert first["accuracy"] == pytest.approx(finished.evaluated[0].score.metrics["accuracy"])
    assert set(finished.evaluated[0].score.metrics) <= set(first)
    assert json.loads(json.dumps(rows)) == rows  # plain data: nothing to convert
    for row, entry in zip(rows, finished.summary()["evaluated"], strict=True):  # what summary.json says, flat
        metrics = entry.pop("metrics")
        assert {k: row[k] for k in entry} == entry and metrics.items() <= row.items()


def test_an_unknown_hash_is_a_toolkit_error_that_names_the_run_and_where_hashes_are(finished):
    real = finished.evaluated[1].hash
    with pytest.raises(UnknownNetworkError) as info:
        finished.get(real[:-1] + ("0" if real[-1] != "0" else "1"))
    assert isinstance(info.value, KeyError)  # what `get` raised before: callers catching KeyError still do
    message = str(info.value)
    assert finished.run_id in message and "Did you mean" in message and real in message
    assert "result.best" in message
    assert finished.get(real).hash == real


def test_resuming_with_overrides_but_no_config_is_refused_not_ignored(finished):
    with pytest.raises(ConfigError, match=r"overrides \['evaluations'\].*resumed run keeps its own config"):
        run_search(None, resume=finished.run_dir, overrides={"evaluations": 9}, toolkit=default_toolkit())


def test_wrong_arguments_to_run_search_and_open_run_are_named_before_a_run_folder_exists(finished, tmp_path):
    tk = default_toolkit()
    doc = config_doc(NB201_SEARCH, tmp_path / "runs", evaluations=2)

    class Counting(SearchCallback):
        pass

    # each was an AttributeError or pathlib's TypeError from inside; a callback that is none failed at the
    # search's start, leaving a failed run folder of 0 evaluations "to resume"
    refused = [
        (lambda: run_search(doc, tk), "a run folder is a path (str or pathlib.Path), got Toolkit: pass a toolkit as"),
        (lambda: run_search(doc, toolkit="default"), "run_search: toolkit must be a Toolkit"),
        (lambda: run_search(doc, toolkit=tk, callbacks=[print]), "callbacks[0]: builtin_function_or_method is no"),
        (lambda: run_search(doc, toolkit=tk, callbacks=[Counting]), "callbacks[0]: the class Counting (give an"),
        (lambda: run_search(doc, toolkit=tk, callbacks=Counting()), "got Counting (one callback: callbacks=[it])"),
        (lambda: open_run(finished, toolkit=tk), "got SearchResult: give its run_dir"),
        (lambda: open_run(None, toolkit=tk), "a run folder is a path (str or pathlib.Path), got NoneType"),
        (lambda: open_run(finished.run_dir, toolkit=tk.layer_types), "open_run: toolkit must be a Toolkit"),
    ]
    for call, message in refused:
        with pytest.raises(TypeError) as info:
            call()
        assert message in str(info.value)
    with pytest.raises(ConfigError, match="overrides: a dict of top-level keys and their values, got list"):
        run_search(doc, toolkit=tk, overrides=[("evaluations", 3)])
    assert not (tmp_path / "runs").exists()


def test_time_models_estimates_and_hardware_models_print_short():
    tk = default_toolkit()
    arch = tk.seed("resnet50")
    model = get_time_model("roofline", tk, device="h100-sxm")
    assert repr(model) == "<RooflineTimeModel 'roofline' on 'h100-sxm'>"
    est = model.estimate(arch, batch_size=8)
    text = repr(est)
    assert len(text) < 400 and "latency_ms=" in text, text
    assert "details" not in text and est.details["layers"]  # still there to read
    hw = load_hardware_model(tk.hardware.get("h100-sxm").path)
    assert hw.notes and len(repr(hw)) < 700 and "notes" not in repr(hw)
    # the toolkit where its registry goes: "argument of type 'Toolkit' is not iterable"
    with pytest.raises(TypeError, match="^hardware must be the toolkit's registry, got the Toolkit itself: pass toolk"):
        load_hardware_model("h100-sxm", tk)
    assert load_hardware_model("h100-sxm", tk.hardware).name == "h100-sxm"


def test_a_torch_evaluation_gives_the_global_rng_back():
    rng = np.random.default_rng(0)
    data = dataset_from_arrays("tiny", rng.random((60, 1, 8, 8), dtype=np.float32), np.arange(60) % 3)
    evaluator = make_evaluator("torch", {"dataset": data, "epochs": 1, "seed": 3}, default_toolkit())
    arch = default_toolkit().seeds.get("simple-cnn").build_for(default_toolkit().layer_types, (1, 8, 8), 3)
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    result = evaluator.evaluate(arch)
    assert 0.0 <= result.valid_accuracy <= 1.0
    assert torch.equal(torch.rand(3), expected)  # the caller's stream goes on where it stood
    # printed in a notebook: one short line (it held every epoch's history and the options, ~1,700 characters
    # for 3 epochs, growing with each), the details still there to read
    text = repr(result)
    assert len(text) < 400 and "valid_accuracy=" in text and "history" not in text, text
    assert result.extra["history"]


def test_the_package_lists_its_public_names_without_import_noise():
    names = dir(na_toolkit)
    assert set(na_toolkit.__all__) <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations", "_LAZY"} & set(names)
    assert "search" in names  # an imported submodule is still offered
    for name in na_toolkit.__all__:
        getattr(na_toolkit, name)
    assert issubclass(na_toolkit.NAToolkitError, Exception) and na_toolkit.NAToolkitError is NAToolkitError


def test_the_main_entry_points_say_what_they_do():
    for fn in (Architecture.load, Architecture.save, Architecture.to_torch, Architecture.to_onnx):
        assert inspect.getdoc(fn), fn.__qualname__
    for name in ("roofline", "onnxruntime", "torch", "learned"):
        cls = default_toolkit().time_models.get(name)
        assert cls is not None and "latency_ms" in (inspect.getdoc(cls.estimate) or ""), name
    assert issubclass(default_toolkit().time_models.get("roofline"), TimeModel)


# ---- a finished run read back: open_run -------------------------------------------------------------------
def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def test_a_finished_run_opens_as_the_result_run_search_returned_and_is_not_written(finished):
    folder = Path(finished.run_dir)
    before = _files(folder)
    opened = open_run(folder, toolkit=default_toolkit())
    assert opened == finished  # every field: the evaluations' candidates, scores, results, counters, provenance
    # what the stored summary lacks is derived from its budgets: the hard latency budget the first one breaks
    assert any(e.score.hard_violations == ("latency_ms@pixel3",) for e in opened.evaluated)
    assert opened.rows() == finished.rows() and opened.get(opened.best["pixel3"]).candidate.arch.to_torch()
    # the files the run had are untouched, and nothing is left beside them (no -wal, no -shm): a finished run
    # folder copied or archived after reading it is what the search left
    assert _files(folder) == before


def test_the_docs_export_of_an_opened_runs_network_runs_as_written(finished, tmp_path, monkeypatch):
    """docs/search.md's export from Python: export_candidate took only a Path ('str' object has no attribute
    'parent' for the "best-cpu.onnx" a reader writes)."""
    import re

    import onnx

    text = (Path(__file__).resolve().parent.parent / "docs" / "search.md").read_text()
    snippet = next(b for b in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M) if "export_candidate(" in b)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in finished.run_dir.iterdir())
    namespace = {"result": finished, "best": finished.get(finished.best["pixel3"])}
    exec(compile(snippet, "docs/search.md", "exec"), namespace)
    info, model = namespace["info"], namespace["model"]
    assert info["arch_hash"] == finished.best["pixel3"] and info["trained_weights"] is False  # a table look-up
    assert namespace["weights"] is None and isinstance(model, torch.nn.Module)
    onnx.checker.check_model(onnx.load(str(tmp_path / "best-cpu.onnx")))
    sidecar = json.loads((tmp_path / "best-cpu.preprocessing.json").read_text())
    assert sidecar["arch_hash"] == info["arch_hash"] and sidecar["run_id"] == finished.run_id
    assert sorted(p.name for p in finished.run_dir.iterdir()) == before  # read-only: the run is not written


def test_a_run_opens_from_a_read_only_folder_it_was_moved_to(finished, tmp_path):
    from test_live_run_folder import _read_only

    copy = tmp_path / "archived"
    shutil.copytree(finished.run_dir, copy)
    with _read_only(copy):
        before = _files(copy)
        opened = open_run(copy, toolkit=default_toolkit())
        assert _files(copy) == before
    assert opened.run_dir == copy and opened == replace(finished, run_dir=copy)


#: a process writing the run's store: a write transaction held open, then (on a line of input) a live search's
#: lock on the folder with the run marked running again, as a resume does
_WRITER = """
import sqlite3, sys
from na_toolkit.store.lock import RunLock
folder = sys.argv[1]
conn = sqlite3.connect(folder + "/store.sqlite", isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE runs SET status='running'")
print("writing", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
lock = RunLock(folder).acquire()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_run_opens_beside_a_process_writing_it_and_a_live_search_is_named(finished, tmp_path):
    copy = tmp_path / "live"
    shutil.copytree(finished.run_dir, copy)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(copy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline() == "writing\n"
        # a WAL reader reads the last commit beside an open write transaction: the finished run
        assert open_run(copy, toolkit=default_toolkit()) == replace(finished, run_dir=copy)
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "locked\n"
        with pytest.raises(StoreError, match=rf"still being written by a live search \(pid {writer.pid} .*wait for it"):
            open_run(copy, toolkit=default_toolkit())
    finally:
        writer.kill()
        writer.wait()


def test_opening_what_is_not_a_finished_run_of_this_toolkit_says_what_it_is(finished, tmp_path):
    with pytest.raises(StoreError, match="no run folder"):
        open_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no run folder"):
        open_run(tmp_path / "empty")
    newer = tmp_path / "newer"
    shutil.copytree(finished.run_dir, newer)
    with sqlite3.connect(newer / "store.sqlite") as conn:
        conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    conn.close()
    with pytest.raises(StoreError, match="schema version '2'; this toolkit reads version 1; a newer na-toolkit"):
        open_run(newer)


def test_a_run_store_and_its_records_print_one_short_line(finished):
    from na_toolkit.store import SQLiteRunStore
    from na_toolkit.store.memory import MemoryRunStore

    store = SQLiteRunStore.open(finished.run_dir, readonly=True)
    path = str(Path(finished.run_dir) / "store.sqlite")
    with store:
        assert repr(store) == f"<SQLiteRunStore {finished.run_id} finished, 5 evaluation(s), read-only, path={path!r}>"
        record = store.evaluations()[0]
        text = repr(record)
        # the hash, the metrics; not the architecture's JSON (kilobytes) nor the evaluator's result
        assert "\n" not in text and len(text) < 400, text
        assert record.arch_hash in text and "accuracy=" in text and "nodes" not in text
        assert str(record.arch_json["name"]) in text
    assert repr(store) == f"<SQLiteRunStore {finished.run_id} closed, path={path!r}>"  # printing never raises
    assert repr(MemoryRunStore("r1", {})) == "<MemoryRunStore r1 running, 0 evaluation(s), in memory>"


def test_a_run_whose_summary_predates_later_fields_still_opens(finished, tmp_path):
    """A run written by an earlier version: its summary without the fields added since (provenance, the
    controller's report, the Pareto floor, the outputs, a newer counter) opens with their defaults."""
    old = tmp_path / "old"
    shutil.copytree(finished.run_dir, old)
    summary = finished.summary()
    for key in ("provenance", "controller", "pareto_min_accuracy", "outputs", "metric_sources", "scoring_sources"):
        del summary[key]
    del summary["counters"]["screened"]
    summary["counters"]["a_later_counter"] = 3  # and one a later version adds is left out
    with sqlite3.connect(old / "store.sqlite") as conn:
        conn.execute("UPDATE runs SET result_json=?", (json.dumps(summary),))
    conn.close()
    opened = open_run(old, toolkit=default_toolkit())
    assert opened == replace(
        finished,
        run_dir=old,
        provenance={},
        controller=None,
        pareto_min_accuracy=0.0,
        outputs={},
        counters=replace(finished.counters, screened=0),  # what the run did not count
    )


# ---- a run that did not finish, read as far as it got: open_run(RUN, unfinished=True) ---------------------
def test_a_live_run_opens_as_far_as_it_got_without_disturbing_the_search(searched):
    finished, reader = searched
    assert reader.read is not None
    held, opened, files = reader.read
    assert opened.status == "running" and f"a live search writes it (pid {os.getpid()} " in opened.stop_reason
    # the evaluations the search had scored and written to evaluations.jsonl, exactly as the search held them;
    # a batch it had not written yet is named, not ranked
    scored = len(opened.evaluated)
    assert scored >= 1 and opened.evaluated == held[:scored]
    assert opened.counters.evaluations == len(held) and opened.counters.rounds == 1
    assert bool(opened.warnings) == (scored < len(held))
    # best per device: the search's own order (accuracy first) over those that meet the device's budgets
    fits = [e for e in opened.evaluated if e.feasible_for["pixel3"]]
    top = max(fits, key=lambda e: e.score.metrics["accuracy"]) if fits else None
    assert opened.best["pixel3"] == (top.hash if top else None)
    assert ("pixel3" in opened.infeasible) == (top is None)
    assert set(opened.pareto) <= {e.hash for e in opened.evaluated} and opened.rows() == finished.rows()[:scored]
    assert "store.sqlite-wal" in files  # the writer's: the reader read beside it ...
    assert opened.summary()["status"] == "running"
    # ... and the search went on to the result it returns (the other tests check it is the uninterrupted one)
    assert finished.status == "finished" and len(finished.evaluated) == 5


def _interrupted(finished: SearchResult, dest: Path, stored: int, scored: int) -> Path:
    """A copy of the finished run as a kill leaves it: `stored` evaluations in its store, the first `scored`
    of them in its evaluations.jsonl (the search writes the file after each batch it scores)."""
    from killed_run import cut_run

    cut_run(Path(finished.run_dir), dest, stored).close()
    rows = [json.dumps(r) + "\n" for r in finished.rows()[:scored]]
    (dest / "evaluations.jsonl").write_text("".join(rows))
    return dest


def test_an_interrupted_run_opens_as_far_as_it_got_and_only_when_asked(finished, tmp_path):
    cut = _interrupted(finished, tmp_path / "cut", stored=4, scored=3)
    with pytest.raises(StoreError, match="was interrupted.*--resume"):
        open_run(cut, toolkit=default_toolkit())  # the default still refuses it: a SearchResult is a finished run
    before = _files(cut)
    opened = open_run(cut, unfinished=True, toolkit=default_toolkit())
    assert _files(cut) == before  # read only, and nothing left beside it
    assert opened.status == "interrupted" and f"--resume {cut}" in opened.stop_reason
    assert opened.evaluated == finished.evaluated[:3]  # scored as the search scored them
    assert opened.seed_hash == finished.seed_hash and opened.run_dir == cut
    assert opened.counters.evaluations == 4 and opened.counters.failed_evaluations == 0
    (pending,) = opened.warnings
    assert pending.startswith("1 of the 4 evaluations stored are not in evaluations.jsonl yet")
    assert finished.evaluated[3].hash[:12] in pending
    # the hard budget's violations are the config's (the first network breaks it)
    assert opened.evaluated[0].score.hard_violations == ("latency_ms@pixel3",)
    assert repr(opened).startswith(f"<SearchResult {finished.run_id} interrupted: 3 evaluated")
    # a failed run opens too, with what ended it; a finished one opens as it does without the flag
    with sqlite3.connect(cut / "store.sqlite") as conn:
        conn.execute("UPDATE runs SET status='failed'")
        doc = '{"error": "OSError: disk"}'
        conn.execute("INSERT INTO artifacts VALUES (?, 'failure', ?, 0.0)", (finished.run_id, doc))
    conn.close()
    failed = open_run(cut, unfinished=True, toolkit=default_toolkit())
    assert failed.status == "failed" and failed.stop_reason.startswith("failed (OSError: disk); continue it")
    assert open_run(finished.run_dir, unfinished=True, toolkit=default_toolkit()) == finished


def test_an_unfinished_runs_evaluations_file_that_is_not_its_own_is_a_store_error(finished, tmp_path):
    cut = _interrupted(finished, tmp_path / "cut", stored=2, scored=2)
    table = cut / "evaluations.jsonl"
    table.write_text(table.read_text() + '{"seq": 2, "arch_hash"\n')
    with pytest.raises(StoreError, match=r"evaluations.jsonl line 3 is not an evaluation row"):
        open_run(cut, unfinished=True, toolkit=default_toolkit())
    rows = [json.dumps(r) + "\n" for r in finished.rows()[:3]]  # one more than the store holds
    table.write_text("".join(rows))
    with pytest.raises(StoreError, match=rf"its evaluations.jsonl names network {finished.evaluated[2].hash} but"):
        open_run(cut, unfinished=True, toolkit=default_toolkit())
    table.unlink()  # before the search's first batch was written: nothing scored yet
    empty = open_run(cut, unfinished=True, toolkit=default_toolkit())
    assert empty.evaluated == [] and empty.best == {"pixel3": None} and empty.pareto == []
    assert empty.warnings[0].startswith("2 of the 2 evaluations stored are not in evaluations.jsonl yet")


def test_how_to_continue_a_run_is_told_as_a_command_and_as_the_library_call(finished, tmp_path):
    """A library user is not sent to a CLI they may not run: the refused resume of a run another writer holds,
    and an interrupted run opened, name both `na-toolkit search --resume F` (F shell-quoted) and
    `run_search(resume=F)` (F repr'd), each pasted as it is."""
    import shlex

    from na_toolkit.store.lock import RunLock

    cut = _interrupted(finished, tmp_path / "my runs" / "cut 1", stored=4, scored=3)
    command = f"`na-toolkit search --resume {shlex.quote(str(cut))}`"
    call = f"(Python: `run_search(resume={str(cut)!r})`)"
    with RunLock(cut):  # another writer: this process, through a lock of its own on the folder
        with pytest.raises(StoreError) as refused:
            run_search(resume=cut, progress=False, toolkit=default_toolkit())
    (message,) = str(refused.value).splitlines()
    assert message.startswith("run cut 1 is being written by another search (pid ")
    assert message.endswith(f"then resume this run with {command} {call}"), message
    opened = open_run(cut, unfinished=True, toolkit=default_toolkit())
    assert opened.stop_reason.endswith(f"; continue it with {command} {call}"), opened.stop_reason
    assert run_search(resume=cut, progress=False, toolkit=default_toolkit()).evaluated[:3] == finished.evaluated[:3]
