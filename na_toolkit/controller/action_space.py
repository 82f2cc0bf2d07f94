"""The controller's action space, read from the registered moves (no torch here).

An action is one move: which operation, then one value per parameter of that operation, in the order
`params()` declares them. The space is built from the move_types the search enables, so a plugin's move
gets its own heads without controller code: every `ParamSpec` becomes a categorical over its choices, and a
position parameter becomes a pointer over the network's layers, however many (positions are not capped: a
position's mask has one entry per layer of the network it is asked about, so masks of one parameter differ in
length across a batch and `stack_masks` pads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..moves import MoveType, ParamSpec
from .inputs import check_move_types

#: what `describe` writes for the size of a position parameter: its choices are the network's layers
ANY_SIZE = "any"


@dataclass(frozen=True)
class ActionSpace:
    """The enabled move_types and their parameter specs, in a fixed order (head i belongs to operation i)."""

    move_types: tuple[MoveType, ...]
    params: tuple[tuple[ParamSpec, ...], ...]

    @classmethod
    def from_move_types(cls, move_types: Sequence[MoveType]) -> ActionSpace:
        ops = check_move_types(move_types)
        if not ops:
            raise ConfigError("the controller needs at least one move (search.moves is empty)")
        specs = []
        for op in ops:
            ps = tuple(op.params())
            if not ps:
                raise ConfigError(f"move {op.name!r} declares no parameters; the controller needs at least one")
            for p in ps:
                if not p.is_position and len(p.choices) == 0:
                    raise ConfigError(f"move {op.name!r}: parameter {p.name!r} has no choices")
            specs.append(ps)
        return cls(ops, tuple(specs))

    @property
    def names(self) -> list[str]:
        return [op.name for op in self.move_types]

    @property
    def has_positions(self) -> bool:
        return any(p.is_position for ps in self.params for p in ps)

    def describe(self) -> list[dict[str, Any]]:
        """JSON description: what a saved controller was built for (checked on load). It does not depend on
        any network: a position's size is written as `ANY_SIZE` (the pointer's weights fit any length)."""
        return [
            {
                "operation": op.name,
                "params": [
                    {
                        "name": p.name,
                        "choices": ANY_SIZE if p.is_position else len(p.choices),
                        "position": p.is_position,
                    }
                    for p in ps
                ],
            }
            for op, ps in zip(self.move_types, self.params)
        ]

    def applicable(self, arch: Any) -> np.ndarray:
        """Boolean mask over the move_types: True where the operation has at least one valid move."""
        return np.array([op.is_applicable(arch) for op in self.move_types], dtype=bool)


def stack_masks(masks: Sequence[np.ndarray]) -> np.ndarray:
    """One parameter's masks for a batch of networks as one [rows, width] array: rows of different lengths
    (a position's masks, one entry per layer of each network) padded with False to the longest."""
    width = max(len(m) for m in masks)
    out = np.zeros((len(masks), width), dtype=bool)
    for r, m in enumerate(masks):
        out[r, : len(m)] = m
    return out
