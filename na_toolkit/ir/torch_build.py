"""Build a `torch.nn.Module` from an Architecture: one submodule per node, run in topological order. Its
first forward pass checks each node's output shape against the layer type's shape inference: a layer type
whose torch build disagrees with its `infer_shape` would have every cost, estimate and budget of the network
computed on shapes it does not have."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ArchitectureError
from .architecture import INPUT

if TYPE_CHECKING:  # pragma: no cover
    from .architecture import Architecture


class ArchitectureModule(nn.Module):
    """The torch build of an architecture. `layers[key(node_id)]` is the node's module."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch_json = arch.to_json()
        self._plan: list[tuple[str, str, tuple[str, ...]]] = []
        self._shapes = {node.id: (node.type, arch.shape(node.id)) for node in arch.nodes}
        self._plugins = arch.layer_types  # names a layer type's plugin when its torch build and shapes disagree
        self._shapes_checked = False
        layers = nn.ModuleDict()
        for node in arch.nodes:
            lt = arch.layer_type(node.id)
            layers[self.key(node.id)] = lt.build_torch(
                arch.attrs(node.id), arch.in_shapes(node.id), arch.shape(node.id)
            )
            self._plan.append((node.id, self.key(node.id), node.inputs))
        self.layers = layers
        self._output = arch.output
        self._last_use = {}
        for i, (_nid, _k, inputs) in enumerate(self._plan):
            for s in inputs:
                self._last_use[s] = i

    @property
    def node_ids(self) -> dict[str, str]:
        """`layers` key -> the node id it was built from, in the order the forward pass runs them."""
        return {key: nid for nid, key, _inputs in self._plan}

    @staticmethod
    def key(node_id: str) -> str:
        # ModuleDict keys may not contain '.'
        return node_id.replace(".", "_")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {INPUT: x}
        check = not self._shapes_checked and not _tracing()
        for i, (nid, key, inputs) in enumerate(self._plan):
            values[nid] = self.layers[key](*[values[s] for s in inputs])
            if check:
                self._check_shape(nid, values[nid])
            for s in inputs:  # free activations early: keeps peak memory close to the IR's estimate
                if self._last_use.get(s) == i and s != self._output:
                    values.pop(s, None)
        self._shapes_checked = self._shapes_checked or check
        return values[self._output]

    def _check_shape(self, node_id: str, value: torch.Tensor) -> None:
        layer, expected = self._shapes[node_id]
        got = tuple(getattr(value, "shape", ())[1:])
        if got != tuple(expected):
            try:
                plugin = f" of plugin {self._plugins.plugin_of(layer)}"
            except Exception:  # a registry that cannot say: the layer type's name is enough
                plugin = ""
            raise ArchitectureError(
                f"layer type {layer!r}{plugin}: node {node_id!r}'s torch module gives shape {got} (batch dimension "
                f"left out), but the layer type's infer_shape says {tuple(expected)}: the two must agree, or every "
                "cost, estimate and budget of the network is computed on the wrong shapes (fix the layer type; "
                "na_toolkit.testing.check_layer_type finds this)"
            )


def _tracing() -> bool:
    """Is torch tracing or compiling this forward pass (then it runs once, for the graph: no check)?"""
    compiler = getattr(torch, "compiler", None)
    return bool(
        torch.jit.is_tracing()
        or (compiler is not None and getattr(compiler, "is_compiling", lambda: False)())
        or (compiler is not None and getattr(compiler, "is_exporting", lambda: False)())
    )


def to_torch(arch: Architecture, seed: int | None = 0) -> ArchitectureModule:
    """A fresh torch module of `arch`, weights initialised from `seed` (None: torch's global RNG)."""
    if seed is None:
        return ArchitectureModule(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ArchitectureModule(arch)
