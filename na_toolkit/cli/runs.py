"""`na-toolkit runs [FOLDER] [--json]`: the runs in a folder (default `runs/`), newest first; FOLDER may be
one run folder itself.

Each run: its folder's name (and its run id where that differs: a copied or renamed folder), status
(finished, failed, running — written by a live search now, whose PID and host are shown — or interrupted: a
search that stopped without finishing, to continue with `search --resume`), evaluations paid for, the best
feasible network per device (accuracy, hash), and when it was started and last written.

A finished run's best per device is its stored result's. A run that did not finish (running, interrupted,
failed) has no result yet: its best so far per device is what `open_run(RUN, unfinished=True)` gives
(`search.finished.result_so_far`: the evaluations the search scored into `evaluations.jsonl`, ranked by
`summarize` as its result will be), so `runs` and a notebook reading the run agree. Where they cannot be
ranked (nothing scored yet, a config or a layer type this toolkit cannot read, a damaged evaluations file)
the row shows the most accurate valid evaluation stored instead, feasible or not, and says why in
`unranked`: a listing never fails for one run. The toolkit the CLI built once rebuilds the architectures of
every run (no torch is loaded); ranking costs a few ms per scored evaluation, a finished run nothing more.
A folder whose store cannot be read is listed with the reason instead of stopping the listing. Nothing is
written: the stores are read without taking a run's lock, read-only, beside a live search (the reader's own
-wal/-shm files are removed as it closes: `sqlite_wal.remove_reader_files`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NAToolkitError, StoreError
from .command import Command
from .search import DEFAULT_RUNS

if TYPE_CHECKING:
    from ..search.summary import SearchResult
    from ..store import SQLiteRunStore
    from ..store.base import EvaluationRecord
    from ..toolkit import Toolkit

#: what `runs` says of a failed run whose store recorded no reason (a run made before failures were recorded)
FAILED_REASON = (
    "the run's store records no reason; it is what the search printed on stderr as it ended (its "
    "`na-toolkit: error: ...` line also went to its --log-file, if it had one); once that is fixed, "
    "`na-toolkit search --resume RUN` continues the run"
)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", nargs="?", default=str(DEFAULT_RUNS), help="folder holding run folders (default: runs)")
    p.add_argument("--json", action="store_true", help='print one JSON object: {"folder": ..., "runs": [...]}')


def _best(result: dict[str, Any] | None) -> dict[str, Any]:
    """device -> {accuracy, arch_hash} of the run's best feasible network (None where none met the budgets)."""
    if not result:
        return {}
    out: dict[str, Any] = {}
    for device, entry in dict(result.get("best") or {}).items():
        if isinstance(entry, dict):
            out[device] = {"accuracy": entry.get("metrics", {}).get("accuracy"), "arch_hash": entry.get("arch_hash")}
        else:
            out[device] = None
    return out


def _best_so_far(records: Sequence[EvaluationRecord]) -> dict[str, Any] | None:
    """{accuracy, arch_hash} of the most accurate valid evaluation stored (None: none has an accuracy),
    feasible or not: what a run that did not finish shows where its evaluations cannot be ranked per device."""
    from ..search.outputs import most_accurate

    top = most_accurate(records)
    return None if top is None else {"accuracy": top.metrics["accuracy"], "arch_hash": top.arch_hash}


def _best_ranked(result: SearchResult) -> dict[str, Any]:
    """device -> {accuracy, arch_hash} of the best feasible network of a result (None where none is), as
    `_best` gives it from a stored summary."""
    return {
        device: None if h is None else {"accuracy": result.get(h).score.metrics["accuracy"], "arch_hash": h}
        for device, h in result.best.items()
    }


def _so_far(store: SQLiteRunStore, toolkit: Toolkit) -> dict[str, Any]:
    """What `runs` shows of a run that did not finish: `best` (device -> best feasible so far, ranked as
    `open_run(RUN, unfinished=True)` ranks it) and `best_is_so_far`, or `unranked` (why its evaluations
    cannot be ranked) and `best` {}; and `best_so_far` either way."""
    from ..errors import describe
    from ..search.evaluations_file import JSONL_FILE
    from ..search.finished import result_so_far

    try:
        result, records = result_so_far(store, toolkit)
    except Exception as exc:  # one run's evaluations, config or plugins: the listing goes on, with the reason
        return {"best": {}, "best_so_far": _best_so_far(store.evaluations()), "unranked": describe(exc)}
    if not result.evaluated:
        why = f"nothing scored yet (a search writes {JSONL_FILE} after its first batch)"
        return {"best": {}, "best_so_far": _best_so_far(records), "unranked": why}
    return {"best": _best_ranked(result), "best_is_so_far": True, "best_so_far": _best_so_far(records)}


def describe_run(folder: Path, toolkit: Toolkit) -> dict[str, Any]:
    """What `runs` shows of one run folder (a dict; `error` set when its store cannot be read). `toolkit`
    rebuilds an unfinished run's architectures to rank them: the one the CLI built, for every run listed."""
    from ..search.compat import toolkit_versions
    from ..search.outputs import failure_of
    from ..search.provenance import stored_provenance
    from ..store import SQLiteRunStore
    from ..store.lock import live_holder

    row: dict[str, Any] = {"folder": str(folder), "name": folder.name, "run_id": folder.name}
    try:
        with SQLiteRunStore.open(folder, readonly=True) as store:
            run = store.run()
            row.update(
                run_id=run.run_id,
                status=run.status,
                evaluations=store.count_evaluations(),
                best=_best(run.result),
                best_is_so_far=False,
                created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_s)),
                updated=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.updated_s)),
                created_s=run.created_s,
                # na_toolkit's version per session (start, resumes), repeats merged: ["0.1.0", "0.2.0"]
                toolkit=toolkit_versions(stored_provenance(store)),
            )
            if run.result is None:  # not finished: its best so far per device, as open_run(unfinished=True) has it
                row.update(_so_far(store, toolkit))
            if run.status == "failed":
                row["reason"] = failure_of(store) or FAILED_REASON
    except (NAToolkitError, OSError) as exc:
        row.update(status="unreadable", error=str(exc), created_s=0.0)
        return row
    if row["status"] == "running":
        holder = live_holder(folder)
        if holder is None:
            row["status"] = "interrupted"
        else:
            row["writer"] = holder
    return row


def list_runs(folder: Path, toolkit: Toolkit) -> list[dict[str, Any]]:
    """Every run folder directly inside `folder`, newest first; `folder` itself when it is a run folder.
    `toolkit`: as `describe_run`'s, one for every run."""
    from ..store.base import STORE_FILE

    if (folder / STORE_FILE).is_file():
        return [describe_run(folder, toolkit)]
    if folder.exists() and not folder.is_dir():
        raise StoreError(
            f"{str(folder)!r} is a file, not a folder of runs; give the folder your searches write runs into "
            "(output) or a run folder"
        )
    if not folder.is_dir():
        raise StoreError(f"no folder {str(folder)!r}; give the folder your searches write runs into (output)")
    rows = [describe_run(p, toolkit) for p in sorted(folder.iterdir()) if (p / STORE_FILE).is_file()]
    rows.sort(key=lambda r: -float(r.get("created_s", 0.0)))
    return rows


def _format_best(row: dict[str, Any]) -> str:
    from ..search.outputs import format_accuracy

    if "error" in row:
        return str(row["error"])
    so_far = row.get("best_so_far")
    if so_far is not None and not row.get("best"):  # not ranked per device: the best valid accuracy stored
        return f"{format_accuracy(so_far['accuracy'])} (so far)"
    tail = " (so far)" if row.get("best_is_so_far") else ""
    parts = []
    for device, entry in dict(row.get("best") or {}).items():
        acc = None if entry is None else entry.get("accuracy")
        if entry is None:
            shown = "none feasible yet" if tail else "none feasible"
        else:
            shown = ("?" if acc is None else format_accuracy(acc)) + tail
        parts.append(f"{device}: {shown}")
    return "; ".join(parts) or "-"


def _format_run(row: dict[str, Any]) -> str:
    return row["name"] if row["run_id"] == row["name"] else f"{row['name']} (run id {row['run_id']})"


def _format_status(row: dict[str, Any]) -> str:
    writer = row.get("writer")
    if writer is None:
        return str(row["status"])
    return f"running ({writer.split(' since ')[0]})"  # "pid N on host H": the start time is a column


def _run(args: argparse.Namespace) -> int:
    from ._format import render_table

    rows = list_runs(Path(args.folder), args.toolkit)
    if args.json:
        # one JSON object, as every command's --json prints (a list would leave no room to grow)
        json.dump({"folder": str(args.folder), "runs": rows}, sys.stdout, indent=2, default=str)
        print()
        return 0
    if not rows:
        print(f"no runs in {args.folder}")
        return 0
    body = [
        [_format_run(r), _format_status(r), str(r.get("evaluations", "-")), _format_best(r), r.get("created", "-")]
        + [" -> ".join(r.get("toolkit") or []) or "-"]
        for r in rows
    ]
    print(render_table(["run", "status", "evaluations", "best accuracy per device", "started", "na_toolkit"], body))
    # what ended each failed run, as it recorded it (or where to look, for a run that recorded nothing)
    notes = [f"failed ({_format_run(r)}): {r['reason']}" for r in rows if r["status"] == "failed"]
    if any(r.get("best_is_so_far") for r in rows):
        notes.append(
            "DEVICE: ACCURACY (so far): the best feasible network per device among the evaluations a run that did not "
            "finish has scored, ranked as its result will be"
        )
    if any(r.get("best_so_far") and not r.get("best") for r in rows):
        notes.append(
            "(so far) without a device: the best valid accuracy a run that did not finish has evaluated, feasible "
            "or not (its evaluations cannot be ranked per device yet; `runs --json` says why: `unranked`)"
        )
    if notes:
        print("\n" + "\n".join(notes))
    return 0


COMMANDS = (Command("runs", "list the runs in a folder: status, evaluations, best per device", _configure, _run),)
