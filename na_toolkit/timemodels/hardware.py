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
