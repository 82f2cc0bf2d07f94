"""A small imperative builder for architectures: `x = b.layer("conv2d", x, filters=16)`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .architecture import INPUT, Architecture, Attrs, Node

if TYPE_CHECKING:
    from .layers import LayerTypeRegistry


class ArchitectureBuilder:
    """Collects nodes, then `build()` validates them against the layer types (given here or to `build`)."""

    def __init__(
        self, input_shape: tuple[int, ...], name: str = "", layer_types: LayerTypeRegistry | None = None
    ) -> None:
        self.input_shape = tuple(input_shape)
        self.name = name
        self.layer_types = layer_types
        self.nodes: list[Node] = []
        self._counts: dict[str, int] = {}

    @property
    def input(self) -> str:
        return INPUT

    def layer(self, type_: str, *inputs: str, id: str | None = None, **attrs: Any) -> str:
        if id is None:
            n = self._counts.get(type_, 0)
            self._counts[type_] = n + 1
            id = f"{type_}_{n}"
        self.nodes.append(Node(id, type_, Attrs(attrs), tuple(inputs)))
        return id

    def build(self, output: str | None = None, layer_types: LayerTypeRegistry | None = None) -> Architecture:
        types = layer_types if layer_types is not None else self.layer_types
        if types is None:
            raise TypeError(
                "ArchitectureBuilder needs the layer types: ArchitectureBuilder(shape, layer_types=...) or "
                "build(layer_types=...) (toolkit.layer_types, or na_toolkit.builtin.layers.builtin_layer_types())"
            )
        return Architecture(self.input_shape, self.nodes, output=output, name=self.name, layer_types=types)
