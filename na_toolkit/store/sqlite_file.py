"""The run store's file made whole: its schema, its creation under a temporary name, its write transactions
(`sqlite.py` is the store that uses them)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError
from .base import SCHEMA_VERSION
from .faultpoint import kill_point

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, config_json TEXT NOT NULL, status TEXT NOT NULL,
    created_s REAL NOT NULL, updated_s REAL NOT NULL, result_json TEXT
);
CREATE TABLE evaluations (
    run_id TEXT NOT NULL, arch_hash TEXT NOT NULL, seq INTEGER NOT NULL, round INTEGER NOT NULL,
    arch_json TEXT NOT NULL, metrics_json TEXT NOT NULL, result_json TEXT NOT NULL, error TEXT,
    eval_time_s REAL NOT NULL, created_s REAL NOT NULL,
    PRIMARY KEY (run_id, arch_hash), UNIQUE (run_id, seq)
);
CREATE TABLE measurements (
    run_id TEXT NOT NULL, arch_hash TEXT NOT NULL, device TEXT NOT NULL, time_model TEXT NOT NULL,
    settings TEXT NOT NULL, estimate_json TEXT NOT NULL, created_s REAL NOT NULL,
    PRIMARY KEY (run_id, arch_hash, device, time_model, settings)
);
CREATE TABLE predictor_data (
    run_id TEXT NOT NULL, target TEXT NOT NULL, arch_hash TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (run_id, target, arch_hash)
);
CREATE TABLE checkpoints (
    run_id TEXT NOT NULL, round INTEGER NOT NULL, kind TEXT NOT NULL, schema_version INTEGER NOT NULL,
    format TEXT NOT NULL, blob BLOB NOT NULL, created_s REAL NOT NULL,
    PRIMARY KEY (run_id, round, kind)
);
CREATE TABLE weights (
    run_id TEXT NOT NULL, arch_hash TEXT NOT NULL, schema_version INTEGER NOT NULL, format TEXT NOT NULL,
    blob BLOB NOT NULL, PRIMARY KEY (run_id, arch_hash)
);
CREATE TABLE artifacts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, doc_json TEXT NOT NULL, created_s REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""
_EXISTS_HINT = "resume that run with --resume, or choose another output folder"
TABLES = ("meta", "runs", "evaluations", "measurements", "predictor_data", "checkpoints", "weights", "artifacts")


def make_store_file(path: Path, run_id: str, stored_config: str, toolkit_version: str) -> None:
    """A new store at `path` holding its schema and the run (`stored_config`: its config JSON); a StoreError
    when a file is there already."""
    # made whole under a temporary name, then linked into place: a reader (`runs` as a search starts) never
    # finds it without its tables, and a kill while it is made leaves no half-made store in a new one's way
    if path.exists():  # refused before anything is made; the link below refuses one made in the meantime
        raise StoreError(f"{path} already exists: {_EXISTS_HINT}")
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=MEMORY")  # no journal file beside it: a kill leaves the one file
        now = time.time()
        with transaction(conn):
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("toolkit_version", toolkit_version), ("run_id", run_id)],
            )
            conn.execute("INSERT INTO runs VALUES (?, ?, 'running', ?, ?, NULL)", (run_id, stored_config, now, now))
        conn.close()
        _link_new(tmp, path)
    finally:
        conn.close()
        tmp.unlink(missing_ok=True)


def _link_new(made: Path, path: Path) -> None:
    """`made` at `path` too, unless a file is there (a hard link; a rename on a file system without links)."""
    try:
        os.link(made, path)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or path.exists():
            raise StoreError(f"{path} already exists: {_EXISTS_HINT}") from None
        os.replace(made, path)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot write the run store: {exc}") from None
    try:
        yield
        kill_point("transaction")  # the fault benchmark's kill inside a write transaction (faultpoint.py)
    except sqlite3.DatabaseError as exc:  # a full disk, a store made read-only under the run
        if conn.in_transaction:  # SQLite has rolled back itself after some errors (SQLITE_FULL)
            conn.execute("ROLLBACK")
        raise StoreError(
            f"cannot write the run store: {exc}; what it holds so far is kept: make room (or make it writable "
            "again), then resume the run"
        ) from None
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write the run store: {exc}") from None
