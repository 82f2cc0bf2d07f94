"""A run folder as a kill leaves it, made from a finished one: a copy cut back to its first evaluations."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from na_toolkit.store import STORE_FILE


def cut_run(
    run_dir: Path, dest: Path, kept: int, *, checkpoints_from: int = 0, tables: Sequence[str] = ("predictor_data",)
) -> sqlite3.Connection:
    """Copy `run_dir` to `dest` and cut the copy's store to its first `kept` evaluations (with their rows of
    `tables`) and its checkpoints before round `checkpoints_from`, marked running (not finished). Returns
    the open connection (committed), for more changes; the caller closes it."""
    shutil.copytree(run_dir, dest)
    conn = sqlite3.connect(dest / STORE_FILE)
    gone = [h for (h,) in conn.execute("SELECT arch_hash FROM evaluations WHERE seq >= ?", (kept,))]
    conn.execute("DELETE FROM evaluations WHERE seq >= ?", (kept,))
    for table in tables:
        conn.executemany(f"DELETE FROM {table} WHERE arch_hash = ?", [(h,) for h in gone])
    conn.execute("DELETE FROM checkpoints WHERE round >= ?", (checkpoints_from,))
    conn.execute("UPDATE runs SET status = 'running', result_json = NULL")
    conn.commit()
    return conn
