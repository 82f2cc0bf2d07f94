"""A run store appears whole or not at all: a reader that finds `store.sqlite` (`runs` as a search starts, a
test polling for the store) finds its tables, and a process killed while making it leaves no half-made store.

Before, the file was made in place and its tables committed a moment later: `na-toolkit runs` listed a search
that was just starting as "unreadable: not a na-toolkit run store (missing table(s) ...)", and a test polling
for a live run's evaluations through `SQLiteRunStore.open` failed the same way when it looked in that moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from na_toolkit.errors import StoreError
from na_toolkit.store import STORE_FILE, SQLiteRunStore
from na_toolkit.store.faultpoint import KILL_AT_ENV

#: makes a store; run with NA_TOOLKIT_KILL_AT=transaction:1 it is killed (SIGKILL) inside the transaction that
#: creates the tables, its statements run, before COMMIT: the moment a reader could find the store half-made
CREATE = """
import sys
from na_toolkit.store import SQLiteRunStore

SQLiteRunStore.create(sys.argv[1], "run", {"evaluations": 3}).close()
"""


def test_a_store_killed_while_it_is_made_leaves_no_half_made_store(tmp_path):
    path = tmp_path / "run" / STORE_FILE
    env = {**os.environ, KILL_AT_ENV: "transaction:1"}
    proc = subprocess.run([sys.executable, "-c", CREATE, str(path)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not path.exists()  # was: a store.sqlite without tables, in the way of a new one
    with SQLiteRunStore.create(path, "run", {"evaluations": 3}):
        pass
    with SQLiteRunStore.open(path, readonly=True) as store:
        assert store.run().status == "running" and store.evaluations() == []
    # made, it is never made again over itself: the store there is refused and left as it is
    before = path.read_bytes()
    with pytest.raises(StoreError, match="already exists: resume that run with --resume"):
        SQLiteRunStore.create(path, "other", {"evaluations": 3})
    assert path.read_bytes() == before
    # what is left of the killed process's making is its own temporary file; this process's ones are gone
    assert len([p for p in path.parent.iterdir() if p.name.startswith(f".{STORE_FILE}.creating-")]) == 1
