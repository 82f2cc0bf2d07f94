"""Seed networks: the existing networks a search starts from (registered via `na_register_seeds`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .architecture import Architecture

if TYPE_CHECKING:
    from ..registry import Registry
    from ..toolkit import Toolkit
    from .layers import LayerTypeRegistry


@dataclass(frozen=True)
class Seed:
    """A seed network: `build(layer_types)` returns its `Architecture`, validated against those types.

    A seed may stand for a family of networks (a benchmark's search space): `parse(spec, layer_types,
    table)` then turns a spec string of the family's own form into one of them (e.g. an NB201 cell string
    or `INDEX` of its table), or returns None when `spec` is not of that form. Commands that take an
    architecture argument accept `NAME:SPEC` and, failing other readings, any family's own form."""

    name: str
    description: str
    build: Callable[[LayerTypeRegistry], Architecture]
    #: the dataset the seed's input shape is made for (informational)
    dataset: str = ""
    parse: Callable[[str, LayerTypeRegistry, str | None], Architecture | None] | None = None

    @property
    def builds_for_data(self) -> bool:
        """Whether its builder takes a dataset's `input_shape` and `classes` (keyword arguments), so that
        `build_for` can build it for any data."""
        try:
            accepted = inspect.signature(self.build).parameters
        except (TypeError, ValueError):  # a builder without a readable signature (a C function)
            return False
        return "input_shape" in accepted and "classes" in accepted

    def build_for(
        self, layer_types: LayerTypeRegistry, input_shape: tuple[int, ...], classes: int
    ) -> Architecture | None:
        """The seed built for a dataset's input shape and class count, when its builder takes them (keyword
        arguments `input_shape` and `classes`, as the built-in seeds' do); None when it does not."""
        if not self.builds_for_data:
            return None
        return self.build(layer_types, input_shape=tuple(input_shape), classes=int(classes))  # type: ignore[call-arg]


def fixed_seed_hint(seeds: Registry[Seed]) -> str:
    """What to do when a seed whose builder takes no input shape does not fit a dataset."""
    others = [n for n in seeds.names() if seeds.get(n).builds_for_data]
    return (
        "the seed is built for one input shape (its builder takes no input_shape); start from a seed "
        f"built for the data ({', '.join(others) or 'none registered'}) or from a network file made for it"
    )


def get_seed(name: str, toolkit: Toolkit) -> Architecture:
    """The seed `name` of `toolkit`, built with the toolkit's layer types."""
    return toolkit.seeds.get(name).build(toolkit.layer_types)
