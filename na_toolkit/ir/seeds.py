"""Seed networks: the existing networks a search starts from (registered via `na_register_seeds`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .architecture import Architecture

if TYPE_CHECKING:
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

    def build_for(
        self, layer_types: LayerTypeRegistry, input_shape: tuple[int, ...], classes: int
    ) -> Architecture | None:
        """The seed built for a dataset's input shape and class count, when its builder takes them (keyword
        arguments `input_shape` and `classes`, as the built-in seeds' do); None when it does not."""
        try:
            accepted = inspect.signature(self.build).parameters
        except (TypeError, ValueError):  # a builder without a readable signature (a C function)
            return None
        if "input_shape" not in accepted or "classes" not in accepted:
            return None
        return self.build(layer_types, input_shape=tuple(input_shape), classes=int(classes))  # type: ignore[call-arg]


def get_seed(name: str, toolkit: Toolkit) -> Architecture:
    """The seed `name` of `toolkit`, built with the toolkit's layer types."""
    return toolkit.seeds.get(name).build(toolkit.layer_types)
