"""Seed networks: the existing networks a search starts from (registered via `na_register_seeds`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .architecture import Architecture


@dataclass(frozen=True)
class Seed:
    name: str
    description: str
    build: Callable[[], Architecture]
    #: the dataset the seed's input shape is made for (informational)
    dataset: str = ""


def get_seed(name: str) -> Architecture:
    from ..plugins import get_toolkit

    return get_toolkit().seeds.get(name).build()
