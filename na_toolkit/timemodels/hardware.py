"""Hardware sources: analytic hardware models (hwmodels/*.toml) and measured device profiles
(profiles/*.json), registered through `na_register_hardware`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HardwareSource:
    """A named hardware description on disk: kind is 'model' (TOML) or 'profile' (JSON)."""

    name: str
    kind: str
    path: Path


def sources_in_folder(path) -> list[HardwareSource]:
    folder = Path(path)
    out = [HardwareSource(p.stem, "model", p) for p in sorted(folder.glob("*.toml"))]
    out += [HardwareSource(p.stem, "profile", p) for p in sorted(folder.glob("*.json"))]
    return out
