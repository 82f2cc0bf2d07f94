"""One writer per run: an advisory lock on the run folder, held for as long as a search writes its store.

The lock is `flock` on `run.lock` in the run folder, so the kernel releases it when its holder ends, however
it ends (a `kill -9` leaves no stale lock behind). The file names its holder (PID, host, start time) so a
second writer is told who has the run. A reader (`report`, `export`) takes no lock.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import socket
import time
from pathlib import Path
from types import TracebackType

from ..errors import StoreError

LOCK_FILE = "run.lock"
HOLDER_BYTES = 200  # the holder line is written padded to this width, in one write, so no reader sees half of it
HOLDER_WAIT_S = 1.0  # how long a refused writer waits for the holder to name itself (it has the lock, not yet the line)
#: what a refused writer, `runs` and `report` say of a held lock whose file names no live process yet
HOLDER_UNKNOWN = "holder unknown"


class RunFolderGone(StoreError):
    """The run folder a search writes was moved or deleted under it (`RunLock.check_in_place`)."""


class RunLock:
    """`with RunLock(folder):` — the one writer of the run in `folder`; a StoreError naming the holder when
    another process already writes it."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreError(
                f"run {self.path.parent.name} is being written by another search ({holder}); wait for it to end, "
                "or stop it, before resuming this run"
            ) from None
        line = f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.pwrite(fd, line.encode()[:HOLDER_BYTES].ljust(HOLDER_BYTES), 0)
        os.ftruncate(fd, HOLDER_BYTES)
        self._fd = fd
        return self

    def check_in_place(self) -> None:
        """A `RunFolderGone` when the run folder this lock was taken in is no longer where it was (moved,
        renamed or deleted while the search ran): the store, open by its file, follows the folder, while
        the outputs would go to the old path. Two stats; nothing when the lock is not held."""
        if self._fd is None:
            return
        held = os.fstat(self._fd)
        try:
            here = os.stat(self.path)
            if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                return
        except OSError:
            pass
        folder = self.path.parent
        if held.st_nlink == 0:
            raise RunFolderGone(
                f"run folder {str(folder)!r} was deleted while the search ran, and its store with it; the search "
                "stops here rather than pay for evaluations nothing keeps: start it again"
            )
        try:  # Linux: the lock file's path now, which names the folder it went to
            now = Path(os.readlink(f"/proc/self/fd/{self._fd}")).parent
        except OSError:
            now = None
        where = f"moved to {str(now)!r}" if now is not None else "moved or renamed"
        resume = shlex.quote(str(now)) if now is not None else "FOLDER (where it is now)"
        raise RunFolderGone(
            f"run folder {str(folder)!r} was {where} while the search ran; the search stops here, before paying "
            f"for more (its outputs would go to the old path): continue it with `na-toolkit search --resume {resume}`"
        )

    def release(self, remove: bool = False) -> None:
        """Let go of the run. `remove`: also delete the lock file (a run that never started leaves its folder
        as it found it); a run's lock file otherwise stays, since deleting it while another process waits on
        the same file could let two writers in."""
        if self._fd is not None:
            if remove:
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """The line of the process holding the lock on `fd`. The holder takes the lock before it writes its line,
    so for a moment the file is empty or still names the previous (ended) holder: wait a little for a line
    naming a live process."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            text = os.pread(fd, HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        if _names_live_process(text) is not False:
            return text
        if time.monotonic() >= deadline:
            return HOLDER_UNKNOWN
        time.sleep(0.02)


def _holder_line(text: str) -> str:
    """What to say of a held lock whose file reads `text`: the line, unless it names no live process (the
    holder has not written its own yet: an empty file, or the previous, ended holder's line)."""
    return text if _names_live_process(text) is not False else HOLDER_UNKNOWN


def _names_live_process(text: str) -> bool | None:
    """Whether the holder line `text` names a live process: None where that cannot be told here (a process on
    another host, or one owned by someone else, is taken to be alive), False for an empty, unreadable or
    ended one."""
    parts = text.split()
    if len(parts) < 5 or parts[0] != "pid" or parts[2:4] != ["on", "host"]:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if parts[4] != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None  # alive, owned by someone else
    return True


def live_holder(folder: str | Path) -> str | None:
    """Who writes the run in `folder` now ("pid N on host H since ..."), or None when nobody holds its lock.
    Never takes the lock (it cannot get in a writer's way): on Linux the kernel's table of held locks
    (/proc/locks) says whether the lock file is held; elsewhere, whether the process the file names is
    alive (a holder on another host is reported as the file names it)."""
    path = Path(folder) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        st = path.stat()
    except OSError:
        return None
    held = _held_per_proc_locks(st)
    if held is not None:
        return _holder_line(text) if held else None
    return None if _names_live_process(text) is False else text


def _held_per_proc_locks(st: os.stat_result) -> bool | None:
    """Whether /proc/locks lists a lock on the file of `st` (None where there is no /proc/locks)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    # "1: FLOCK  ADVISORY  WRITE 18710 00:2e:1234 0 EOF" (blocked waiters are marked "->" and do not count)
    return any(len(f) >= 6 and f[1] == "FLOCK" and f[5] == dev for f in (line.split() for line in lines))
