"""Output files of the commands: checked before the work, written atomically after it.

A command that writes `--out` checks first that it can (`check_out`: the folder exists or can be made and
is writable, the path is not a folder, and it is none of the files the command reads), so a calibration or
a fit is never thrown away at the end for an unwritable path and an input is never overwritten by its own
output; and it writes through `atomic_out`, so a failed or killed command leaves the previous file (or
none), never a half-written one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, NAToolkitError
from ..files import document_kind, with_article


def check_out(
    path: str | os.PathLike[str],
    option: str = "--out",
    error: type[NAToolkitError] = ConfigError,
    make_folders: bool = True,
    inputs: Iterable[str | os.PathLike[str]] = (),
    suffixes: tuple[str, ...] = (),
    kind: str | None = None,
) -> Path:
    """`path` as a Path once it is known to be writable; else `error` in one line naming it. `make_folders`:
    a missing folder is made on write (else it must exist). `inputs`: files the command reads, which the
    output must not be (a path that is no existing file is skipped: a seed name, say). `suffixes`: the
    kinds of file the command writes (".onnx"): an existing file of another kind (a config, a CSV) is
    refused rather than overwritten, one of the same kind is replaced (a command run again). `kind`: the
    document the command writes (`files.document_kind`: "architecture", ...); an existing non-empty file
    with the right suffix that is not one (a device profile where an architecture goes) is refused too."""
    p = Path(path)
    what = f"cannot write {option} {str(p)!r}"
    if p.is_dir():
        raise error(f"{what}: it is a folder; give a file path")
    for source in inputs:  # the input first: the more telling of the two when both hold
        if p.exists() and Path(source).is_file() and os.path.samefile(p, source):
            raise error(f"{what}: it is the input {str(source)!r}, which would be overwritten; give another path")
    if suffixes and p.is_file() and p.suffix.lower() not in suffixes:
        kinds = " or ".join(suffixes)
        raise error(
            f"{what}: it is an existing file that is not a {kinds} file, which this command would overwrite; "
            f"give a {kinds} path (or remove the file first)"
        )
    if kind is not None and p.is_file() and p.stat().st_size > 0 and (found := document_kind(p)) != kind:
        it = (
            f"an existing {found}, not {with_article(kind)}"
            if found
            else f"an existing file that is not {with_article(kind)}"
        )
        raise error(f"{what}: it is {it}, which this command would overwrite; give another path (or remove it first)")
    if p.is_file() and p.stat().st_size > 0 and (other := _not_a_model(p)):
        raise error(
            f"{what}: it is {other}, which this command would overwrite; give another path (or remove it first)"
        )
    existing = p.parent
    if not make_folders and not existing.exists():
        raise error(f"{what}: folder {str(existing)!r} does not exist")
    while not existing.exists() and existing.parent != existing:  # made on write: its nearest parent must take it
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{what}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"{what}: folder {str(existing)!r} is not writable; give another path")
    if p.exists() and not os.access(p, os.W_OK):
        raise error(f"{what}: the file is not writable; give another path")
    return p


def temp_path(path: Path) -> Path:
    """A temporary name beside `path` with the same suffix (writers that pick formats by suffix keep it)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextmanager
def atomic_out(path: str | os.PathLike[str], make_folders: bool = True) -> Iterator[Path]:
    """`with atomic_out(out) as tmp:` write to `tmp`; on success it replaces `out` in one rename, on failure
    it is removed and `out` is left as it was."""
    p = Path(path)
    if make_folders:
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(p)
    try:
        yield tmp
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def warn(text: str) -> None:
    """A `na-toolkit: warning: TEXT` line on stderr through logging: `-q` hides it, `--log-file` keeps it."""
    logging.getLogger("na_toolkit").warning("warning: %s", text)


def notice(text: str) -> None:
    """A progress line (`calibrating ...`, `wrote PATH`) on stderr, as it is, unless `-q` (errors only):
    stdout holds only the command's answer."""
    quiet = any(
        getattr(h, "_na_toolkit_cli", False) and not isinstance(h, logging.FileHandler) and h.level > logging.WARNING
        for h in logging.getLogger("na_toolkit").handlers
    )
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _not_a_model(path: Path) -> str | None:
    """What an existing `.onnx` or `.pt`/`.pth` file is when it is not a model of its suffix (None when it is,
    or the suffix is another): a file of that name written by something else, which an export must not replace."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        try:
            import onnx

            onnx.load_model(str(path), load_external_data=False)
        except Exception:  # any parse failure: not an ONNX model
            return "an existing file that is not an ONNX model"
    elif suffix in (".pt", ".pth"):
        import zipfile

        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
            return "an existing file that is not a torch save (a zip archive)"
    return None
