"""One writer per run: an advisory lock on the run folder, held for as long as a search writes its store.

The lock is `flock` on the run folder itself (its directory), so the kernel releases it when its holder ends,
however it ends (a `kill -9` leaves no stale lock behind), and nothing inside the folder can be removed to
let a second writer in: the folder cannot be deleted while its store is in it, and a moved or deleted folder
stops its search (`check_in_place`). The file `run.lock` names the holder (PID, host, start time) so a second
writer, `runs` and `report` can say who has the run; it is locked too (the lock of earlier versions), and a
holder whose `run.lock` was deleted by hand writes it again. A reader (`report`, `export`) takes no lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import socket
import time
from pathlib import Path
from types import TracebackType

from ..errors import StoreError, resume_hint

LOCK_FILE = "run.lock"
HOLDER_BYTES = 200  # the holder line is written padded to this width, in one write, so no reader sees half of it
HOLDER_WAIT_S = 1.0  # how long a refused writer waits for the holder to name itself (it has the lock, not yet the line)
#: what a refused writer, `runs` and `report` say of a held lock whose file names no live process yet
HOLDER_UNKNOWN = "holder unknown"
#: errors of a filesystem that takes no flock on a directory (NFS emulates flock with byte-range locks, which
#: a directory opened read-only cannot take): the run is then guarded by `run.lock` alone, as before
_NO_FOLDER_LOCK = (errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP)


class RunFolderGone(StoreError):
    """The run folder a search writes was moved or deleted under it (`RunLock.check_in_place`)."""


class RunLock:
    """`with RunLock(folder):` — the one writer of the run in `folder`; a StoreError naming the holder when
    another process already writes it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._dir_fd: int | None = None  # the run folder, locked (where the filesystem allows it)
        self._fd: int | None = None  # run.lock, locked, naming this process

    def acquire(self) -> RunLock:
        dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = folder_holder(self.folder, os.fstat(dir_fd))
            os.close(dir_fd)
            raise self._refused(holder) from None
        except OSError as exc:
            if exc.errno not in _NO_FOLDER_LOCK:
                os.close(dir_fd)
                raise
        try:
            self._fd = self._name_holder()
        except BaseException:
            os.close(dir_fd)
            raise
        self._dir_fd = dir_fd
        return self

    def _name_holder(self) -> int:
        """Lock `run.lock` (a writer of an earlier version locks that file alone) and write this process's
        line into it; returns its fd."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # read-only: an archive, a read-only mount, another user's folder
            where, copy = shlex.quote(str(self.folder)), resume_hint("COPY", placeholder=True)
            raise StoreError(
                f"cannot write run {self.folder.name}: its folder {str(self.folder)!r} is not writable here "
                f"({exc.strerror or exc}); a search writes its run's store, so resume a writable copy of it "
                f"(`cp -r {where} COPY` and {copy}); `runs`, `report` and `export` read "
                "it as it is"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise self._refused(holder) from None
        line = f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.pwrite(fd, line.encode()[:HOLDER_BYTES].ljust(HOLDER_BYTES), 0)
        os.ftruncate(fd, HOLDER_BYTES)
        return fd

    def _refused(self, holder: str) -> StoreError:
        parts = holder.split()
        here = len(parts) >= 5 and parts[0] == "pid" and parts[4] == socket.gethostname()
        stop = f"`kill {parts[1]}`" if here else "Ctrl-C or `kill PID` where it runs"
        return StoreError(
            f"run {self.folder.name} is being written by another search ({holder}); a run has one writer at a "
            f"time: wait for that search to end, or stop it ({stop}: it keeps its evaluations), then resume "
            f"this run with {resume_hint(self.folder)}"
        )

    def check_in_place(self) -> None:
        """A `RunFolderGone` when the run folder this lock was taken in is no longer where it was (moved,
        renamed or deleted while the search ran): the store, open by its file, follows the folder, while
        the outputs would go to the old path. A `run.lock` deleted or replaced by hand is written again (it
        names the holder to others). A few stats; nothing when the lock is not held."""
        if self._dir_fd is None:
            return
        held = os.fstat(self._dir_fd)
        try:
            here = os.stat(self.folder)
            if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                self._keep_name()
                return
        except OSError:
            pass
        folder = self.folder
        if held.st_nlink == 0:
            raise RunFolderGone(
                f"run folder {str(folder)!r} was deleted while the search ran, and its store with it; the search "
                "stops here rather than pay for evaluations nothing keeps: start it again"
            )
        try:  # Linux: the folder's path now
            now: Path | None = Path(os.readlink(f"/proc/self/fd/{self._dir_fd}"))
        except OSError:
            now = None
        where = f"moved to {str(now)!r}" if now is not None else "moved or renamed"
        if now is not None:
            resume = resume_hint(now)
        else:
            resume = f"{resume_hint('FOLDER', placeholder=True)}, FOLDER being where it is now"
        raise RunFolderGone(
            f"run folder {str(folder)!r} was {where} while the search ran; the search stops here, before paying "
            f"for more (its outputs would go to the old path): continue it with {resume}"
        )

    def _keep_name(self) -> None:
        """Write `run.lock` again when it is no longer the file this process locked (deleted by hand)."""
        if self._fd is not None:
            try:
                st, mine = os.stat(self.path), os.fstat(self._fd)
                if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                    return
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
        try:
            self._fd = self._name_holder()
        except (OSError, StoreError):  # not now (another process has the new file): the folder lock still holds
            pass

    def release(self, remove: bool = False) -> None:
        """Let go of the run. `remove`: also delete the lock file (a run that never started leaves its folder
        as it found it); a run's lock file otherwise stays, naming its last writer."""
        if self._fd is not None:
            if remove:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def folder_holder(folder: Path, st: os.stat_result) -> str:
    """Who holds the lock on the run folder of stat `st`: the line of its `run.lock` when that names the
    holding process, else the PID the kernel lists for the lock (/proc/locks), on this host. The holder takes
    the lock before it writes its line (and `run.lock` may have been deleted by hand): where the kernel
    cannot tell, wait a little for a line naming a live process."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            text = (folder / LOCK_FILE).read_bytes()[:HOLDER_BYTES].decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        pids = _flock_pids(st)
        if pids:
            named = text.split()[1:2]
            return text if named and named[0] in map(str, pids) else f"pid {pids[0]} on host {socket.gethostname()}"
        if _names_live_process(text) is not False:
            return text
        if time.monotonic() >= deadline:
            return HOLDER_UNKNOWN
        time.sleep(0.02)


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
    (/proc/locks) says whether the folder (or, for a writer of an earlier version, its `run.lock`) is locked;
    elsewhere, whether the process `run.lock` names is alive (a holder on another host is reported as the
    file names it)."""
    folder = Path(folder)
    path = folder / LOCK_FILE
    try:
        dir_st = folder.stat()
    except OSError:
        return None
    if _flock_pids(dir_st):
        return folder_holder(folder, dir_st)
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        st = path.stat()
    except OSError:
        return None
    held = _flock_pids(st)
    if held is not None:
        return _holder_line(text) if held else None
    return None if _names_live_process(text) is False else text


def _flock_pids(st: os.stat_result) -> list[int] | None:
    """The PIDs /proc/locks lists as holding a flock on the file (or folder) of `st` (None where there is no
    /proc/locks)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    # "1: FLOCK  ADVISORY  WRITE 18710 00:2e:1234 0 EOF" (blocked waiters are marked "->" and do not count)
    return [int(f[4]) for f in (line.split() for line in lines) if len(f) >= 6 and f[1] == "FLOCK" and f[5] == dev]
