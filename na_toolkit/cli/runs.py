"""`na-toolkit runs [FOLDER] [--json]`: the runs in a folder (default `runs/`), newest first.

Each run: its id, status (finished, failed, running — written by a live search now — or interrupted: a
search that stopped without finishing, to continue with `search --resume`), evaluations paid for, the best
feasible network per device (accuracy, hash) and when it was started and last written. A folder whose
store cannot be read is listed with the reason instead of stopping the listing. Nothing is written: the
stores are read without taking a run's lock.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import NAToolkitError, StoreError
from .command import Command
from .search import DEFAULT_RUNS


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


def describe_run(folder: Path) -> dict[str, Any]:
    """What `runs` shows of one run folder (a dict; `error` set when its store cannot be read)."""
    from ..store import SQLiteRunStore
    from ..store.lock import live_holder

    row: dict[str, Any] = {"folder": str(folder), "run_id": folder.name}
    try:
        with SQLiteRunStore.open(folder) as store:
            run = store.run()
            row.update(
                run_id=run.run_id,
                status=run.status,
                evaluations=store.count_evaluations(),
                best=_best(run.result),
                created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_s)),
                updated=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.updated_s)),
                created_s=run.created_s,
            )
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
    """Every run folder directly inside `folder`, newest first."""
    from ..store.base import STORE_FILE

    if not folder.is_dir():
        raise StoreError(f"no folder {str(folder)!r}; give the folder your searches write runs into (search.output)")
    rows = [describe_run(p) for p in sorted(folder.iterdir()) if (p / STORE_FILE).is_file()]
    rows.sort(key=lambda r: -float(r.get("created_s", 0.0)))
    return rows


def _format_best(best: dict[str, Any]) -> str:
    from ..search.outputs import format_accuracy

    parts = []
    for device, entry in best.items():
        acc = None if entry is None else entry.get("accuracy")
        shown = "none feasible" if entry is None else "?" if acc is None else format_accuracy(acc)
        parts.append(f"{device}: {shown}")
    return "; ".join(parts) or "-"


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
        [
            r["run_id"],
            r["status"],
            str(r.get("evaluations", "-")),
            _format_best(r.get("best", {})) if "error" not in r else r["error"],
            r.get("created", "-"),
        ]
        for r in rows
    ]
    print(render_table(["run", "status", "evaluations", "best accuracy per device", "started"], body))
    return 0


COMMANDS = (Command("runs", "list the runs in a folder: status, evaluations, best per device", _configure, _run),)
