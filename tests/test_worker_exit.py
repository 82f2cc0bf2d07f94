"""How a pool's worker ends on SIGTERM (`worker_processes._end_worker`): at once, with exit 143, and its
semaphores unlinked by multiprocessing's finalizers, which only a private function runs; without that function
it still ends at once (the resource tracker then unlinks them, saying they leaked)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO_ROOT

#: a process that makes a named semaphore (as tqdm does in a worker), then gets SIGTERM with the worker's handler
WORKER = """
import importlib.util, multiprocessing, os, signal, sys
from multiprocessing import util

# the module alone (it imports only the standard library), not the search package's 0.8 s of imports
spec = importlib.util.spec_from_file_location("worker_processes", "na_toolkit/search/worker_processes.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

if sys.argv[1] == "gone":
    del util._exit_function
lock = multiprocessing.get_context("spawn").Lock()
signal.signal(signal.SIGTERM, module._end_worker)
os.kill(os.getpid(), signal.SIGTERM)
signal.pause()
"""


@pytest.mark.parametrize("finalizers", ["there", "gone"])
def test_a_worker_ends_on_sigterm_and_its_semaphores_are_unlinked(finalizers):
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, finalizers], capture_output=True, text=True, timeout=30, cwd=REPO_ROOT
    )
    assert proc.returncode == 143, proc.stderr
    if finalizers == "there":
        assert proc.stderr == ""
    else:  # the tracker unlinks it and says so
        assert "leaked semaphore" in proc.stderr and "Traceback" not in proc.stderr
