"""The run store: one embedded SQLite file (WAL) per run folder.

It holds the run (config JSON, status, result), every ground-truth evaluation (keyed by architecture
hash, with the architecture JSON, metrics, timings), measurements, checkpoints (the final strategy, RNG, predictors)
and the predictor training data. Each evaluation is written in its own transaction, so a search killed at
any instant loses at most the evaluation that was running; `--resume` replays the run from its start and
serves every stored evaluation and measurement instead of paying for it again.

Nothing is pickled: records and checkpoints are written by store/codec.py. Every blob carries the schema
version it was written with. A file that is not a store, a store of another schema version, or a damaged
one raises `StoreError`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import StoreError, resume_hint
from ..sqlite_wal import ShmGuard, reader_files, remove_reader_files
from .base import SCHEMA_VERSION, STATUSES, STORE_FILE, EvaluationRecord, RunRecord, store_repr, validated
from .codec import decode_state, dumps, encode_state, loads
from .sqlite_file import TABLES as _TABLES
from .sqlite_file import make_store_file
from .sqlite_file import transaction as _transaction

__all__ = ["SCHEMA_VERSION", "STORE_FILE", "EvaluationRecord", "RunRecord", "SQLiteRunStore"]

#: what every SQLite file starts with (https://www.sqlite.org/fileformat.html, section 1.3)
_SQLITE_MAGIC = b"SQLite format 3\x00"


class SQLiteRunStore:
    """The store of one run in one SQLite file (a `RunStore`, see store/base.py).
    `SQLiteRunStore.create(path, run_id, config)` makes a new one; `SQLiteRunStore.open(path)` opens an
    existing one (StoreError if missing, not a store, damaged, or of another schema version)."""

    path: Path

    def __init__(self, path: Path, conn: sqlite3.Connection, run_id: str, readonly: bool = False):
        self.path = path
        self.run_id = run_id
        self.readonly = readonly
        self._closed = False
        self._guard = ShmGuard(path, conn)  # holds the connection
        #: a reader that found no -wal and -shm beside the store: it removes those it made as it closes
        self._made_reader_files = False

    def __repr__(self) -> str:
        """One line: the run, its status and evaluations now, read-only or not, the file."""
        try:
            ((status, count),) = self._read(
                "SELECT status, (SELECT COUNT(*) FROM evaluations WHERE run_id=?) FROM runs WHERE run_id=?",
                (self.run_id, self.run_id),
            )
            state = f"{status}, {count} evaluation(s)" + (", read-only" if self.readonly else "")
        except (StoreError, sqlite3.Error):  # never raises: a debugger or a log line shows it
            state = "closed" if self._closed else "unreadable"
        return store_repr(self, state)

    @property
    def _conn(self) -> sqlite3.Connection:
        """The connection, once the store's `-shm` file is known to be writable still (`ShmGuard`): a store
        whose `-shm` was made read-only under it (`chattr +i` on a live run's folder) is refused with a
        StoreError instead of a SIGBUS, and its connection is left open for good."""
        if not self._guard.usable():
            raise _lost_shm(self.path)
        return self._guard.conn

    # ---- opening ------------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (only an OS crash may drop the last commits)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @classmethod
    def create(cls, path: str | Path, run_id: str, config: Mapping[str, Any]) -> SQLiteRunStore:
        path = Path(path)
        stored_config = dumps(dict(config))  # before the file exists: a config it cannot store leaves none
        path.parent.mkdir(parents=True, exist_ok=True)
        from .. import __version__

        make_store_file(path, run_id, stored_config, __version__)
        return cls(path, cls._connect(path), run_id)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> SQLiteRunStore:
        """`readonly`: for a reader (`runs`, `report`, `export`), which never writes the store: it opens a
        run in a folder it cannot write (an archive, a read-only mount, another user's runs) and cannot
        change the store of a live run."""
        path = Path(path)
        if path.is_dir():
            path = path / STORE_FILE
        if not path.is_file():
            raise StoreError(f"no run store at {path}: give the run folder of an earlier `na-toolkit search`")
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
        if head != _SQLITE_MAGIC:
            raise StoreError(f"{path} is not a run store (not an SQLite file)")
        # Inspect through a read-only connection first: a file that is not one of our stores is refused as
        # it was found (switching it to WAL, or any write, would change a file the user only pointed at).
        found = any(p.exists() for p in reader_files(path))
        try:
            try:
                probe, run_id = cls._probe(path)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{path} is not a readable run store: {exc}") from None
        except BaseException:  # refused (damaged, not ours, a newer schema): left as it was found
            if not found:
                remove_reader_files(path)
            raise
        if readonly:
            store = cls(path, probe, run_id, readonly=True)
            store._made_reader_files = not found
            return store
        probe.close()
        try:  # SQLite would open a file it cannot write read-only, and fail at the first write
            os.close(os.open(path, os.O_RDWR))
        except OSError as exc:
            raise StoreError(
                f"cannot write the run store {str(path)!r} ({exc.strerror or exc}): resume a writable copy of its run "
                f"folder (`cp -r RUN COPY`, then {resume_hint('COPY', placeholder=True)})"
            ) from None
        return cls(path, cls._connect(path), run_id)

    @classmethod
    def _probe(cls, path: Path) -> tuple[sqlite3.Connection, str]:
        """A read-only connection to the store and its run id. A WAL store needs its `-shm` file to be read,
        which a reader makes beside it; in a folder it cannot write (and with no `-wal` file: no writer is
        live, nothing is left to replay) it reads the store as the immutable file it is there."""
        uri = path.resolve().as_uri()
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = sqlite3.connect(f"{uri}{query}", uri=True, timeout=30.0)
            try:
                return conn, cls._check(path, conn)
            except sqlite3.OperationalError as exc:
                conn.close()
                wal = Path(f"{path}-wal")
                if "unable to open" not in str(exc):
                    raise
                if wal.exists():  # commits not yet in the store file: read without them would be read wrong
                    raise StoreError(
                        f"cannot read {path}: {exc} (a reader needs to write {path.name}-shm beside it, and "
                        f"{wal.name} holds commits only a process that can write the folder replays); make the "
                        "folder writable for this user"
                    ) from None
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _check(path: Path, conn: sqlite3.Connection) -> str:
        """The run id of the store behind `conn`; a StoreError when it is damaged, not ours or of another
        schema version."""
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":  # SQLite lists the damage over several lines: one line, the first problems
            damage = " ".join(str(ok).split())[:300]
            raise StoreError(f"{path} is damaged ({damage}); the run cannot be resumed from it")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise StoreError(f"{path} is not a na-toolkit run store (missing table(s) {missing})")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            newer = version is not None and version.isdigit() and int(version) > SCHEMA_VERSION
            raise StoreError(
                f"{path} has store schema version {version!r}; this toolkit reads version {SCHEMA_VERSION}"
                + ("; a newer na-toolkit wrote it: upgrade na-toolkit to read it" if newer else "")
            )
        run_id = meta.get("run_id")
        if not run_id or conn.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is None:
            raise StoreError(f"{path} holds no run record; it is damaged")
        return str(run_id)

    def close(self) -> None:
        self._closed = True
        try:
            conn = self._conn
        except StoreError:  # its -shm made read-only: the connection stays open for good (`_conn`); what it
            return  # committed is in the store and its -wal, which the next writer to open it replays
        conn.close()
        if self._made_reader_files:  # a reader leaves a closed store as it found it: one file, copied whole
            self._made_reader_files = False
            remove_reader_files(self.path)

    def __enter__(self) -> SQLiteRunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from None

    # ---- run ----------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        (row,) = self._read(
            "SELECT run_id, config_json, status, created_s, updated_s, result_json FROM runs WHERE run_id=?",
            (self.run_id,),
        )
        result = loads(row[5], "the run's stored result", decode=False) if row[5] else None
        config = loads(row[1], "the run's stored config", decode=False)
        return validated(
            RunRecord, run_id=row[0], config=config, status=row[2], created_s=row[3], updated_s=row[4], result=result
        )

    def set_status(self, status: str, result: Mapping[str, Any] | None = None) -> None:
        """Set the run's status; `result` (a newer complete result) replaces the stored one. Without it the
        stored result stays: a run's result is replaced only by a newer complete one, never emptied."""
        if status not in STATUSES:
            raise StoreError(f"unknown run status {status!r}")
        with _transaction(self._conn):
            self._conn.execute(
                "UPDATE runs SET status=?, updated_s=?, result_json=COALESCE(?, result_json) WHERE run_id=?",
                (status, time.time(), dumps(dict(result)) if result is not None else None, self.run_id),
            )

    # ---- evaluations --------------------------------------------------------------------------------
    def add_evaluation(
        self,
        arch_hash: str,
        arch_json: Mapping[str, Any],
        metrics: Mapping[str, float],
        result: Mapping[str, Any],
        round: int,
        eval_time_s: float,
        error: str | None = None,
        targets: Mapping[str, float] | None = None,
    ) -> EvaluationRecord:
        """Record one ground-truth evaluation and its predictor training rows, in one transaction.
        StoreError if this architecture was already evaluated in this run (never pay twice)."""
        with _transaction(self._conn):
            if self._conn.execute(
                "SELECT 1 FROM evaluations WHERE run_id=? AND arch_hash=?", (self.run_id, arch_hash)
            ).fetchone():
                raise StoreError(f"architecture {arch_hash} is already evaluated in run {self.run_id}")
            (seq,) = self._conn.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM evaluations WHERE run_id=?", (self.run_id,)
            ).fetchone()
            self._conn.execute(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.run_id,
                    arch_hash,
                    seq,
                    round,
                    dumps(dict(arch_json)),
                    dumps(dict(metrics)),
                    dumps(dict(result)),
                    error,
                    float(eval_time_s),
                    time.time(),
                ),
            )
            for target, value in (targets or {}).items():
                self._conn.execute(
                    "INSERT OR REPLACE INTO predictor_data VALUES (?, ?, ?, ?)",
                    (self.run_id, target, arch_hash, float(value)),
                )
            # the run was last written now (`na-toolkit runs` shows it: a live run's advances)
            self._conn.execute("UPDATE runs SET updated_s=? WHERE run_id=?", (time.time(), self.run_id))
        return EvaluationRecord(
            seq, round, arch_hash, dict(arch_json), dict(metrics), dict(result), error, float(eval_time_s)
        )

    def _record(self, row: tuple) -> EvaluationRecord:
        what = f"the stored evaluation {row[2]!r}"
        return validated(
            EvaluationRecord,
            seq=row[0],
            round=row[1],
            arch_hash=row[2],
            arch_json=loads(row[3], f"{what}: architecture", decode=False),
            metrics=loads(row[4], f"{what}: metrics"),
            result=loads(row[5], f"{what}: result"),
            error=row[6],
            eval_time_s=row[7],
        )

    _EVAL_COLS = "seq, round, arch_hash, arch_json, metrics_json, result_json, error, eval_time_s"

    def evaluations(self) -> list[EvaluationRecord]:
        """Every evaluation of the run, in the order they were stored."""
        rows = self._read(f"SELECT {self._EVAL_COLS} FROM evaluations WHERE run_id=? ORDER BY seq", (self.run_id,))
        return [self._record(r) for r in rows]

    def evaluation(self, arch_hash: str) -> EvaluationRecord | None:
        rows = self._read(
            f"SELECT {self._EVAL_COLS} FROM evaluations WHERE run_id=? AND arch_hash=?", (self.run_id, arch_hash)
        )
        return self._record(rows[0]) if rows else None

    def count_evaluations(self) -> int:
        return self._read("SELECT COUNT(*) FROM evaluations WHERE run_id=?", (self.run_id,))[0][0]

    def predictor_data(self, target: str) -> dict[str, float]:
        """arch hash → target value: what the predictors of `target` were trained on."""
        rows = self._read(
            "SELECT p.arch_hash, p.value FROM predictor_data p JOIN evaluations e "
            "ON e.run_id=p.run_id AND e.arch_hash=p.arch_hash WHERE p.run_id=? AND p.target=? ORDER BY e.seq",
            (self.run_id, target),
        )
        return dict(rows)

    # ---- measurements -------------------------------------------------------------------------------
    def add_measurement(
        self, arch_hash: str, device: str, time_model: str, settings: str, estimate: Mapping[str, Any]
    ) -> None:
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, arch_hash, device, time_model, settings, dumps(dict(estimate)), time.time()),
            )

    def measurement(self, arch_hash: str, device: str, time_model: str, settings: str) -> dict[str, Any] | None:
        rows = self._read(
            "SELECT estimate_json FROM measurements WHERE run_id=? AND arch_hash=? AND device=? AND time_model=? "
            "AND settings=?",
            (self.run_id, arch_hash, device, time_model, settings),
        )
        return loads(rows[0][0], f"the stored measurement of {arch_hash} on {device}") if rows else None

    def count_measurements(self) -> int:
        return self._read("SELECT COUNT(*) FROM measurements WHERE run_id=?", (self.run_id,))[0][0]

    # ---- checkpoints, weights, artifacts ------------------------------------------------------------
    def save_checkpoint(self, round: int, kind: str, state: Any, keep: int = 2) -> None:
        """Store the state of `kind` after `round`, keeping the latest `keep` rounds of that kind (a
        controller's weights are megabytes; a resumed run replays, so older ones serve no purpose)."""
        fmt, blob = encode_state(state)
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, round, kind, SCHEMA_VERSION, fmt, blob, time.time()),
            )
            self._conn.execute(
                "DELETE FROM checkpoints WHERE run_id=? AND kind=? AND round NOT IN "
                "(SELECT round FROM checkpoints WHERE run_id=? AND kind=? ORDER BY round DESC LIMIT ?)",
                (self.run_id, kind, self.run_id, kind, keep),
            )

    def load_checkpoint(self, kind: str, round: int | None = None) -> tuple[int, Any] | None:
        """(round, state) of the latest checkpoint of `kind` (at or before `round` when given)."""
        sql = "SELECT round, schema_version, format, blob FROM checkpoints WHERE run_id=? AND kind=?"
        params: tuple = (self.run_id, kind)
        if round is not None:
            sql += " AND round<=?"
            params += (round,)
        rows = self._read(sql + " ORDER BY round DESC LIMIT 1", params)
        if not rows:
            return None
        rnd, version, fmt, blob = rows[0]
        if version != SCHEMA_VERSION:
            raise StoreError(f"checkpoint {kind!r} has schema version {version}; this toolkit reads {SCHEMA_VERSION}")
        try:
            return rnd, decode_state(fmt, blob)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"checkpoint {kind!r} of round {rnd} is damaged: {exc}") from None

    def checkpoint_kinds(self) -> list[str]:
        rows = self._read("SELECT DISTINCT kind FROM checkpoints WHERE run_id=? ORDER BY kind", (self.run_id,))
        return [r[0] for r in rows]

    def save_weights(self, arch_hash: str, state: Any) -> None:
        fmt, blob = encode_state(state)
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO weights VALUES (?, ?, ?, ?, ?)",
                (self.run_id, arch_hash, SCHEMA_VERSION, fmt, blob),
            )

    def load_weights(self, arch_hash: str) -> Any | None:
        rows = self._read(
            "SELECT schema_version, format, blob FROM weights WHERE run_id=? AND arch_hash=?", (self.run_id, arch_hash)
        )
        if not rows:
            return None
        version, fmt, blob = rows[0]
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"weights of {arch_hash} have schema version {version}; this toolkit reads {SCHEMA_VERSION}"
            )
        return decode_state(fmt, blob)

    def save_artifact(self, name: str, doc: Mapping[str, Any]) -> None:
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?)",
                (self.run_id, name, dumps(dict(doc)), time.time()),
            )

    def artifact(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT doc_json FROM artifacts WHERE run_id=? AND name=?", (self.run_id, name))
        return loads(rows[0][0], f"the stored artifact {name!r}") if rows else None


def _lost_shm(path: Path) -> StoreError:
    return StoreError(
        f"the run store {str(path)!r} can no longer be used: its {path.name}-shm was made read-only (chattr +i, "
        "chmod) while this process had it open, and SQLite writes to it; what it holds so far is kept: make the "
        "run folder writable again and resume the run, or resume a copy of it (`cp -r RUN COPY`, then "
        f"{resume_hint('COPY', placeholder=True)})"
    )
