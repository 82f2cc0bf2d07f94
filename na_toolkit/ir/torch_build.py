"""Build a `torch.nn.Module` from an Architecture: one submodule per node, run in topological order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .architecture import INPUT

if TYPE_CHECKING:  # pragma: no cover
    from .architecture import Architecture


class ArchitectureModule(nn.Module):
    """The torch build of an architecture. `layers[key(node_id)]` is the node's module."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch_json = arch.to_json()
        self._plan: list[tuple[str, str, tuple[str, ...]]] = []
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
        for i, (nid, key, inputs) in enumerate(self._plan):
            values[nid] = self.layers[key](*[values[s] for s in inputs])
            for s in inputs:  # free activations early: keeps peak memory close to the IR's estimate
                if self._last_use.get(s) == i and s != self._output:
                    values.pop(s, None)
        return values[self._output]


def to_torch(arch: Architecture, seed: int | None = 0) -> ArchitectureModule:
    """A fresh torch module of `arch`, weights initialised from `seed` (None: torch's global RNG)."""
    if seed is None:
        return ArchitectureModule(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ArchitectureModule(arch)
