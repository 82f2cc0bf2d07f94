"""This machine: CPU model, core count, NVIDIA GPUs, library versions, date; and the one parser of local
device strings ("cpu", "cuda", "cuda:N").

Recorded with every benchmark result and every device profile, and used by the time models to name the
local device. It sits at the bottom of the layering (it imports nothing from na_toolkit but `errors`), so
the time models, the evaluators and the benchmarks all read it without one importing another.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import importlib.metadata
import os
import platform
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import HardwareError

#: distributions whose versions `machine_info` records (absent ones are left out)
LIBRARIES = ("na-toolkit", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "scikit-learn", "numpy", "pluggy")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_version(dist: str) -> str | None:
    """The version of distribution `dist` installed here (None: not installed). na-toolkit's is the running
    code's own (`na_toolkit.__version__`): an editable install's metadata keeps the version it was installed
    at until it is installed again, and recorded versions must say what made the figures."""
    if dist == "na-toolkit":
        from . import __version__

        return __version__
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees ([] where there is no driver). Cheap: no torch import."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        return [
            pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())
        ]
    finally:
        pynvml.nvmlShutdown()


def machine_info() -> dict[str, Any]:
    """CPU, cores, GPUs, Python, platform, library versions and the date (UTC), as plain JSON data."""
    libs = {d: library_version(d) for d in LIBRARIES}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu_names(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {k: v for k, v in libs.items() if v is not None},
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def source_revision() -> dict[str, Any] | None:
    """The git commit of the na_toolkit code that runs (`commit`), and whether tracked files differ from it
    (`dirty`): which code made a benchmark's figures. Where the package is not in a git checkout (an
    installed wheel) or git is missing: what `NA_TOOLKIT_SOURCE_REVISION` says (`told_revision`), else None."""
    here = os.path.dirname(os.path.abspath(__file__))

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # the package's own files must be tracked: an installed copy inside another project's checkout (a
    # virtual environment in a repository) is not that project's commit
    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return told_revision()
    commit = git("rev-parse", "HEAD")
    if not commit:
        return told_revision()
    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if changed is None else bool(changed)}


#: where git cannot tell (a copy installed with `pip install --target` on a machine without the checkout's
#: .git, as benchmarks/gpu_latency.sh does), the commit the copy was made from: "COMMIT" or "COMMIT+dirty"
SOURCE_REVISION_ENV = "NA_TOOLKIT_SOURCE_REVISION"


def told_revision() -> dict[str, Any] | None:
    """The revision `NA_TOOLKIT_SOURCE_REVISION` gives ("COMMIT" or "COMMIT+dirty", COMMIT 7 to 40 hex
    digits), or None where it is unset; a value of another form is ignored with a warning naming the form."""
    import warnings

    told = os.environ.get(SOURCE_REVISION_ENV, "").strip()
    if not told:
        return None
    found = re.fullmatch(r"([0-9a-f]{7,40})(\+dirty)?", told)
    if found is None:
        warnings.warn(
            f"{SOURCE_REVISION_ENV}={told!r} ignored: give COMMIT or COMMIT+dirty (COMMIT: 7-40 hex digits)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return {"commit": found.group(1), "dirty": found.group(2) is not None}


# ---- local device strings ---------------------------------------------------------------------------
_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
#: the forms `parse_device` accepts, for messages
DEVICE_FORMS = "cpu, cuda, cuda:N"


@dataclass(frozen=True)
class LocalDevice:
    """A device of this machine (what a time model measures on, an evaluator trains on): kind 'cpu' or
    'cuda', and the CUDA index."""

    kind: str
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(device: str | LocalDevice) -> LocalDevice:
    """`LocalDevice` of "cpu", "cuda" (= "cuda:0") or "cuda:N" (case and surrounding blanks ignored).
    Anything else is a `HardwareError` naming the accepted forms. Only the text is checked: whether this
    machine has the device is for the code that uses it (`timemodels.devices.torch_device`, the runtimes)."""
    if isinstance(device, LocalDevice):
        return device
    m = _DEVICE_RE.match(str(device).strip().lower())
    if m is None:
        raise HardwareError(
            f"unknown local device {device!r}; known: {DEVICE_FORMS} "
            "(hardware models and profiles are for the roofline and learned time models)"
        )
    kind, index = m.group(1), m.group(2)
    if kind == "cpu" and index not in (None, "0"):
        raise HardwareError(f"device {device!r}: the CPU is one device, use 'cpu'")
    return LocalDevice(kind, int(index or 0))


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Run the block with the BLAS libraries that numpy and SciPy load (OpenBLAS here) limited to `threads`
    threads (None: leave them alone), restored afterwards. A search's driver does its numeric work on small
    matrices (feature matrices of a few thousand rows, predictor fits on hundreds of evaluations), where a
    second BLAS thread only spins: on this project's 2-core machine one NB201 neural-architect search spent
    25.3 CPU-s with 2 OpenBLAS threads and 16.6 with 1, in the same wall time. torch keeps its own thread
    pool (`torch.set_num_threads`), which this does not touch."""
    if not threads:
        yield
        return
    import numpy  # noqa: F401  (its OpenBLAS must be loaded to be limited)
    import scipy.linalg  # noqa: F401  (SciPy's own OpenBLAS, which scikit-learn's models use)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


#: the collector's generation-0 threshold while a search runs (Python's default is 700 allocations)
SEARCH_GC_THRESHOLD = 20_000
_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, ...] = ()


@contextlib.contextmanager
def fewer_collections(threshold: int = SEARCH_GC_THRESHOLD) -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector run less often: its generation-0 threshold
    raised to `threshold` (never lowered; a collector switched off stays off), restored afterwards, when
    the last of nested or concurrent blocks ends. A search allocates millions of small containers (networks,
    feature rows, JSON documents) in a process that holds torch's, SciPy's and scikit-learn's hundreds of
    thousands of objects: at the default threshold the collector walked that whole heap again and again
    (on an NB201 neural-architect search, 2.8 s of 26 s in collections, 2.1 s of them in 9 full
    collections; a 1000-evaluation table search with a run folder, 9.5 s of 32 s). Nothing it computes
    changes: only when unreachable cycles are freed."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            if 0 < _gc_saved[0] < threshold:
                gc.set_threshold(threshold, *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)
