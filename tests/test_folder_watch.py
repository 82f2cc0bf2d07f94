"""The folder watch of a live search (search/run_folder.py `FolderWatch`) names what happened to its run
folder, whatever instant a move lands in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from na_toolkit.search.run_folder import FolderWatch
from na_toolkit.store.base import STORE_FILE
from na_toolkit.store.lock import RunFolderGone, RunLock


class MovedAfterItsFirstCheck(RunLock):
    """A real lock on a real folder that a `mv` renames right after the watch's folder check passed: the
    instant between that check and the look at the store file, where a move once read as a deleted store."""

    def __init__(self, folder: Path, to: Path) -> None:
        super().__init__(folder)
        self.to = to
        self.checks = 0

    def check_in_place(self) -> None:
        super().check_in_place()
        self.checks += 1
        if self.checks == 1:
            os.rename(self.folder, self.to)


def test_a_folder_moved_between_the_folder_check_and_the_store_check_is_named_as_moved(tmp_path):
    run, moved = tmp_path / "run", tmp_path / "run-moved"
    run.mkdir()
    (run / STORE_FILE).write_bytes(b"a store")
    with MovedAfterItsFirstCheck(run, moved) as lock:
        watch = FolderWatch(lock, run / STORE_FILE)
        with pytest.raises(RunFolderGone) as info:
            watch.check()
    assert str(info.value).startswith(f"run folder {str(run)!r} was moved to {str(moved)!r} while the search ran")
    assert (moved / STORE_FILE).read_bytes() == b"a store"


def test_a_store_file_replaced_in_a_folder_left_in_place_is_named_as_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / STORE_FILE).write_bytes(b"a store")
    with RunLock(run) as lock:
        watch = FolderWatch(lock, run / STORE_FILE)
        watch.check()  # nothing happened yet
        (tmp_path / "another").write_bytes(b"another store")  # made while the store still exists: a new file
        os.replace(tmp_path / "another", run / STORE_FILE)
        with pytest.raises(RunFolderGone, match=r"run store .* was deleted or replaced while the search ran"):
            watch.check()
