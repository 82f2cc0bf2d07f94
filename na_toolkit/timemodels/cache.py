"""A cache of time estimates keyed by (architecture hash, device, runtime, batch size, settings).

Measuring is slow (a second per network) and a search asks about the same candidate many times, so every
measured time model consults this cache first. It lives in memory and, optionally, in an SQLite file
(WAL mode, one row per key, the estimate as JSON), so measurements survive the process and are shared by
concurrent workers. The settings part of the key is canonical JSON of everything that changes the result
(provider, threads, measurement settings, the device's exact description).

A cache file that can no longer be used while a search runs (its `-shm` made read-only under it, which
would end the process with SIGBUS at SQLite's next access: `ShmGuard`; a write that fails) is dropped with
one `TimeModelCacheWarning`: the time model goes on with the estimates in memory, rather than stop the search.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import TimeModelCacheWarning, TimeModelError
from ..sqlite_wal import ShmGuard
from .base import TimeEstimate


@dataclass(frozen=True)
class CacheKey:
    arch_hash: str
    device: str
    runtime: str
    batch_size: int
    settings: str

    @classmethod
    def make(cls, arch_hash: str, device: str, runtime: str, batch_size: int, settings: dict[str, Any]) -> CacheKey:
        return cls(arch_hash, device, runtime, int(batch_size), json.dumps(settings, sort_keys=True, default=str))

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def estimate_to_json(est: TimeEstimate) -> dict[str, Any]:
    doc = asdict(est)
    doc["warnings"] = list(est.warnings)
    return doc


def estimate_from_json(doc: dict[str, Any]) -> TimeEstimate:
    names = {f.name for f in fields(TimeEstimate)}
    data = {k: v for k, v in doc.items() if k in names}
    data["warnings"] = tuple(data.get("warnings") or ())
    return TimeEstimate(**data)


class TimeEstimateCache:
    """In-memory dict plus an optional SQLite file. `hits` / `misses` count lookups."""

    def __init__(self, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self._memory: dict[CacheKey, TimeEstimate] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._guard: ShmGuard | None = None
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self._open()

    def _open(self) -> None:
        path = self.path
        if path is None:  # in memory only
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS estimates "
                "(key TEXT PRIMARY KEY, estimate TEXT NOT NULL, created_s REAL NOT NULL)"
            )
            db.commit()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # the file cannot be opened or written, not damaged
                raise TimeModelError(
                    f"time-estimate cache {str(self.path)!r} cannot be opened for writing ({exc}): make the file "
                    "and its folder writable, or pass another path"
                ) from None
            raise TimeModelError(
                f"time-estimate cache {str(self.path)!r} is not a usable SQLite file ({exc}); "
                "delete it or pass another path"
            ) from None
        self._db, self._guard = db, ShmGuard(path, db)

    def _disk(self) -> sqlite3.Connection | None:
        """The file's connection, or None (in memory only, or the file dropped: `_drop`)."""
        if self._db is not None and self._guard is not None and not self._guard.usable():
            self._drop("its -shm file was made read-only (chattr +i, chmod) while this process had it open")
        return self._db

    def _drop(self, why: str) -> None:
        """Stop using the file, with one warning; its connection is closed unless that would write a `-shm`
        made read-only (`ShmGuard` then keeps it open for good)."""
        if self._db is None:
            return
        if self._guard is None or self._guard.usable():
            self._db.close()
        self._db = None
        warnings.warn(
            f"time-estimate cache {str(self.path)!r} can no longer be used ({why}); measurements go on with the "
            "estimates in memory, not saved for later runs: make the file and its folder writable again for the "
            "next run, or pass another cache path",
            TimeModelCacheWarning,
            stacklevel=4,
        )

    def get(self, key: CacheKey) -> TimeEstimate | None:
        with self._lock:
            est = self._memory.get(key)
            db = self._disk() if est is None else None
            if db is not None:
                try:
                    row = db.execute("SELECT estimate FROM estimates WHERE key = ?", (key.text(),)).fetchone()
                except sqlite3.DatabaseError as exc:
                    self._drop(f"reading it failed: {exc}")
                    row = None
                if row is not None:
                    est = estimate_from_json(json.loads(row[0]))
                    self._memory[key] = est
            if est is None:
                self.misses += 1
            else:
                self.hits += 1
            return est

    def put(self, key: CacheKey, est: TimeEstimate) -> None:
        with self._lock:
            self._memory[key] = est
            db = self._disk()
            if db is None:
                return
            try:
                with db:  # one transaction per estimate
                    db.execute(
                        "INSERT OR REPLACE INTO estimates (key, estimate, created_s) VALUES (?, ?, ?)",
                        (key.text(), json.dumps(estimate_to_json(est), default=str), time.time()),
                    )
            except sqlite3.DatabaseError as exc:  # a full disk, a file made read-only, locked for 30 s
                self._drop(f"writing it failed: {exc}")

    def __len__(self) -> int:
        db = self._disk()
        if db is not None:
            return int(db.execute("SELECT COUNT(*) FROM estimates").fetchone()[0])
        return len(self._memory)

    def close(self) -> None:
        db = self._disk()
        if db is not None:
            db.close()
            self._db = None
