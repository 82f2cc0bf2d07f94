"""`na-toolkit runs [FOLDER] [--json]`: the runs in a folder (default `runs/`), newest first; FOLDER may be
one run folder itself.

Each run: its folder's name (and its run id where that differs: a copied or renamed folder), status
(finished, failed, running — written by a live search now, whose PID and host are shown — or interrupted: a
search that stopped without finishing, to continue with `search --resume`), evaluations paid for, the best
feasible network per device (accuracy, hash) of a finished run or the best valid accuracy so far of one
that did not finish, and when it was started and last written. A folder whose store cannot be read is
listed with the reason instead of stopping the listing. Nothing is written: the stores are read without
taking a run's lock.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NAToolkitError, StoreError
from .command import Command
from .search import DEFAULT_RUNS

if TYPE_CHECKING:
    from ..store import SQLiteRunStore

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


def _best_so_far(store: SQLiteRunStore) -> dict[str, Any] | None:
    """{accuracy, arch_hash} of the most accurate valid evaluation stored (None: none has an accuracy). A run
    that did not finish has no verdict per device yet, so this is accuracy alone, feasible or not."""
    from ..search.outputs import most_accurate

    top = most_accurate(store.evaluations())
    return None if top is None else {"accuracy": top.metrics["accuracy"], "arch_hash": top.arch_hash}


def describe_run(folder: Path) -> dict[str, Any]:
    """What `runs` shows of one run folder (a dict; `error` set when its store cannot be read)."""
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
                created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_s)),
                updated=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.updated_s)),
                created_s=run.created_s,
                # na_toolkit's version per session (start, resumes), repeats merged: ["0.1.0", "0.2.0"]
                toolkit=toolkit_versions(stored_provenance(store)),
            )
            if run.result is None:  # not finished: no per-device verdict, only what it evaluated so far
                row["best_so_far"] = _best_so_far(store)
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


def list_runs(folder: Path) -> list[dict[str, Any]]:
    """Every run folder directly inside `folder`, newest first; `folder` itself when it is a run folder."""
    from ..store.base import STORE_FILE

    if (folder / STORE_FILE).is_file():
        return [describe_run(folder)]
    if folder.exists() and not folder.is_dir():
        raise StoreError(
            f"{str(folder)!r} is a file, not a folder of runs; give the folder your searches write runs into "
            "(output) or a run folder"
        )
    if not folder.is_dir():
        raise StoreError(f"no folder {str(folder)!r}; give the folder your searches write runs into (output)")
    rows = [describe_run(p) for p in sorted(folder.iterdir()) if (p / STORE_FILE).is_file()]
    rows.sort(key=lambda r: -float(r.get("created_s", 0.0)))
    return rows


def _format_best(row: dict[str, Any]) -> str:
    from ..search.outputs import format_accuracy

    if "error" in row:
        return str(row["error"])
    so_far = row.get("best_so_far")
    if so_far is not None and not row.get("best"):
        return f"{format_accuracy(so_far['accuracy'])} (so far)"
    parts = []
    for device, entry in dict(row.get("best") or {}).items():
        acc = None if entry is None else entry.get("accuracy")
        shown = "none feasible" if entry is None else "?" if acc is None else format_accuracy(acc)
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

    rows = list_runs(Path(args.folder))
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
    if any(r.get("best_so_far") for r in rows):
        notes.append("(so far): the best valid accuracy a run that did not finish has evaluated, feasible or not")
    if notes:
        print("\n" + "\n".join(notes))
    return 0


COMMANDS = (Command("runs", "list the runs in a folder: status, evaluations, best per device", _configure, _run),)
