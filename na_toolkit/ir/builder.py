"""A small imperative builder for architectures: `x = b.layer("conv2d", x, filters=16)`."""

from __future__ import annotations

from typing import Any

from .architecture import INPUT, Architecture, Attrs, Node


class ArchitectureBuilder:
    def __init__(self, input_shape: tuple[int, ...], name: str = ""):
        self.input_shape = tuple(input_shape)
        self.name = name
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

    def build(self, output: str | None = None, layer_types: Any = None) -> Architecture:
        return Architecture(self.input_shape, self.nodes, output=output, name=self.name, layer_types=layer_types)
