"""The dataset protocol: a loader plus a descriptor (size, classes, shape, balance, statistics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: `load()` returns the arrays (see na_toolkit.datasets)."""

    name: str
    description: str
    load: Callable[..., Any]
