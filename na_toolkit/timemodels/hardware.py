"""Hardware sources: analytic hardware models (hwmodels/*.toml) and measured device profiles
(profiles/*.json), registered through `na_register_hardware`.

A source is only a name, a kind and a path: nothing is parsed at registration, so plugin loading stays
cheap and a broken file only fails when it is used (with an error naming the file and key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: file suffix → kind of hardware source
SOURCE_KINDS = {".toml": "model", ".json": "profile"}


@dataclass(frozen=True)
class HardwareSource:
    """A named hardware description on disk: kind is 'model' (TOML) or 'profile' (JSON)."""

    name: str
    kind: str
    path: Path


def sources_in_folder(path: str | Path) -> list[HardwareSource]:
    """Every hardware model (`*.toml`) and device profile (`*.json`) directly in `path`, named by file stem,
    sorted by name within each kind. A missing folder holds nothing."""
    folder = Path(path)
    if not folder.is_dir():
        return []
    out: list[HardwareSource] = []
    for suffix, kind in SOURCE_KINDS.items():
        out += [HardwareSource(p.stem, kind, p) for p in sorted(folder.glob(f"*{suffix}")) if p.is_file()]
    return out


def source_problem(source: HardwareSource) -> str | None:
    """Why a hardware source cannot be registered (an unknown kind, a path that is not a file), or None.
    Only the kind and the file's existence are checked: a file is read when it is used."""
    kinds = list(SOURCE_KINDS.values())
    if source.kind not in kinds:
        return (
            f"hardware source {source.name!r} has kind {source.kind!r}; a kind is 'model' (a TOML hardware "
            "model) or 'profile' (a JSON device profile)"
        )
    if not Path(source.path).is_file():
        return f"hardware {source.kind} {source.name!r}: {source.path} is not a file"
    return None


def folder_problem(path: str | Path, sources: list[HardwareSource]) -> str | None:
    """Why `registry.add_folder(path)` registers nothing (a missing or empty folder), or None."""
    folder = Path(path)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        return (
            f"add_folder({str(path)!r}): the folder {what} (a misspelt path, or package data left out of the "
            "distribution: declare the files in package_data)"
        )
    if not sources:
        return f"add_folder({str(path)!r}): the folder holds no hardware model (*.toml) or device profile (*.json)"
    return None
