"""Run folders: a new one per search (`<output>/<name>-<YYYYmmdd-HHMMSS>`, made atomically so two runs
started in the same second get two), and finding one from what a user typed (a path or a run id)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, StoreError
from ..store.base import STORE_FILE
from ..store.lock import RunFolderGone, RunLock
from .progress import SearchCallback

if TYPE_CHECKING:  # pragma: no cover
    from ..store.base import RunStore
    from .summary import Evaluated


def discard_folders(made: Sequence[Path]) -> None:
    """Remove the folders made for a run that never started (its run folder, then the output folder where
    the run made that too), each only while empty: a search refused before it started leaves the disk as it
    found it."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # not empty (another run's meanwhile), or gone
            return


def new_run_dir(output: Path, name: str) -> tuple[str, Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = f"{name}-{stamp}"
    run_dir = output / run_id
    i = 2
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output: {str(output)!r} is a file, not a folder; give the folder the run folders go in")
    try:
        output.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                run_dir.mkdir()  # atomic: two runs started in the same second get two folders
                return run_id, run_dir
            except FileExistsError:
                run_id = f"{name}-{stamp}-{i}"
                run_dir = output / run_id
                i += 1
    except OSError as exc:  # a file on the way, no permission, a full or read-only disk
        raise ConfigError(
            f"output: cannot make a run folder in {str(output)!r}: {exc.strerror or exc}; give another folder"
        ) from None


def resolve_run_dir(run: str | Path, output: Path | None = None) -> Path:
    """A run folder given as a path, or as a run id inside `output`; absolute, as a new run's is (a resumed
    run's summary.json names its folder and files so, not relative to where the resume was typed). Anything
    but a str or path is a TypeError (`run_search(config, toolkit)` hands the toolkit to `resume`)."""
    if not isinstance(run, str | os.PathLike):
        hint = {"Toolkit": ": pass a toolkit as toolkit=...", "SearchResult": ": give its run_dir"}
        raise TypeError(
            f"a run folder is a path (str or pathlib.Path), got {type(run).__name__}{hint.get(type(run).__name__, '')}"
        )
    path = Path(run)
    if (path / STORE_FILE).is_file() or path.suffix == ".sqlite":
        return (path if path.is_dir() else path.parent).absolute()
    if output is not None and (output / str(run) / STORE_FILE).is_file():
        return (output / str(run)).absolute()
    raise StoreError(f"no run folder {str(run)!r} (a folder holding {STORE_FILE}, made by `na-toolkit search`)")


class FolderWatch(SearchCallback):
    """Stops a search whose run folder was moved or deleted under it, or whose store file was deleted or
    replaced, at the next evaluation it stores (`RunLock.check_in_place`), instead of paying for hours of
    evaluations into a store at another path, or in none, and writing its outputs into a new folder at the
    old path."""

    def __init__(self, lock: RunLock, store_file: Path | None = None) -> None:
        self.lock = lock
        self.store_file = store_file
        self._store_id = _file_id(store_file) if store_file is not None else None

    def check(self) -> None:
        self.lock.check_in_place()
        if self.store_file is not None and self._store_id is not None and _file_id(self.store_file) != self._store_id:
            # the folder may have moved since the check above (the store then looks gone at its old path):
            # the folder's own check names the move
            self.lock.check_in_place()
            raise RunFolderGone(
                f"run store {str(self.store_file)!r} was deleted or replaced while the search ran, and the "
                "evaluations in it with it; the search stops here rather than pay for evaluations nothing keeps: "
                "start it again"
            )

    def on_evaluation(self) -> None:
        self.check()

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:  # before the evaluations files are written
        self.check()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def run_folder_callbacks(lock: RunLock, store: RunStore) -> list[SearchCallback]:
    """What a search writing a run folder adds to its callbacks: the folder watch (of the folder and of the
    store's file), and the evaluations files kept up to date as it goes (from the evaluations its store holds
    now, with the figures' sources its provenance records)."""
    from .evaluations_file import EvaluationsSoFar
    from .figure_sources import metric_sources
    from .provenance import stored_provenance

    def sources() -> dict[str, dict[str, str]]:
        return metric_sources(stored_provenance(store))

    return [FolderWatch(lock, store.path), EvaluationsSoFar(lock.path.parent, store.count_evaluations(), sources)]
