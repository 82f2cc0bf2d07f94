"""An SQLite file in WAL mode kept open for long (the run store, the time-estimate cache) whose `-shm` file
may be made read-only under it: `ShmGuard` says when its connection can no longer be used.

SQLite writes the WAL index in `-shm` through a shared memory map, and a write to the map of a file made
immutable (`chattr +i` on a live folder, or a chmod) kills the process with SIGBUS, as a read or a close
does (each writes it). The guard sees the change before each use, and from then on keeps the connection
open for good (closing it writes the map too): its owner refuses (the store) or forgets the file (the
cache). A `-shm` that was never writable here (a reader of an archived folder) is mapped read-only by
SQLite and is safe.

A read-only connection to a WAL file makes its `-wal` and `-shm` beside it (where the folder is writable) and
cannot remove them as it closes (SQLite's last connection removes them by checkpointing, which a read-only one
may not): `remove_reader_files` does, so a reader leaves a closed store the one file it found.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["ShmGuard", "keep_open", "reader_files", "remove_reader_files"]


class ShmGuard:
    """The `-shm` file of the SQLite file `path`, opened by `conn`: `usable()` is False once it was writable
    and is not any more (the connection is then kept open for good, never to be used again)."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.shm = Path(f"{path}-shm")
        self.conn = conn
        self.writable = False  # seen writable: SQLite then maps it for writing
        self.lost = False  # made read-only since

    def usable(self) -> bool:
        if not self.lost and os.access(self.shm, os.W_OK):
            self.writable = True
        elif self.writable and not self.lost and self.shm.exists():
            self.lost = True
            keep_open(self.conn)
        return not self.lost


def keep_open(conn: sqlite3.Connection) -> None:
    """Never close `conn`, not even as the interpreter exits: one more reference that nothing releases (a
    close writes the `-shm` map, which would end the process with SIGBUS). The OS releases it at exit."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))


def reader_files(path: Path) -> tuple[Path, Path]:
    """The `-wal` and `-shm` files of the SQLite file `path`."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def remove_reader_files(path: Path) -> None:
    """Remove the empty `-wal` and the `-shm` a closed read-only connection left beside the SQLite file `path`,
    the way SQLite itself does: a connection that may write opens it and closes, and SQLite removes them as
    its last connection closes, so nothing is removed while another process (a writer that started since, a
    reader) has the file open. Nothing is written: a `-wal` that holds commits (a writer's, killed since) is
    left for the next writer to replay, and so is a file this process may not write. Best effort: where the
    file cannot be opened, the two files stay, as they were."""
    wal, shm = reader_files(path)
    try:
        if wal.stat().st_size != 0 or not os.access(path, os.W_OK):
            return
    except OSError:  # no -wal (a writer that closed since removed both) or no folder: nothing to do
        return
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=1.0)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the WAL: its close removes it
        finally:
            conn.close()
    except sqlite3.Error:
        return
