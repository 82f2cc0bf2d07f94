"""The move protocol: a `MoveType` (a kind of move, registered through `na_register_moves`, as a
`LayerType` is a kind of node) edits an Architecture, purely (IR -> IR); a `Move` is one chosen move: the
move type's name and its parameter values.

Each move type declares an ordered parameter space (`params()`); the controller samples one parameter at a
time, each from a categorical over that parameter's `choices`, with `mask(arch, param, chosen)` removing the
values that admit no valid completion given the parameters already chosen. The invariant every move type
keeps: a full assignment whose every value was admitted by its mask applies without error.
Position parameters index `arch.nodes` (topological order); positions past the end are masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import MoveError
from ..ir.architecture import Architecture
from ..registry import Registry

#: Position parameters have this many choices; an architecture's nodes beyond it cannot be edited.
MAX_POSITIONS = 128


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a move: its name and its choices (for a position: indices 0..MAX_POSITIONS-1)."""

    name: str
    choices: tuple[Any, ...]
    is_position: bool = False

    @classmethod
    def position(cls, name: str) -> ParamSpec:
        return cls(name, tuple(range(MAX_POSITIONS)), is_position=True)

    def __len__(self) -> int:
        return len(self.choices)


class MoveType:
    """Base class of a move. Subclasses set `name`, `description`, implement `params`, `mask`, `apply`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def params(self) -> tuple[ParamSpec, ...]:
        raise NotImplementedError

    def mask(self, arch: Architecture, param: str, chosen: dict[str, Any]) -> np.ndarray:
        """Boolean array over `param`'s choices: True where the value has at least one valid completion,
        given the earlier parameters in `chosen`."""
        raise NotImplementedError

    def apply(self, arch: Architecture, **params: Any) -> Architecture:
        """A new Architecture with the move applied; `arch` is never changed. MoveError if invalid."""
        raise NotImplementedError

    # ---- derived helpers ----------------------------------------------------------------------------
    def param(self, name: str) -> ParamSpec:
        for p in self.params():
            if p.name == name:
                return p
        raise MoveError(f"move {self.name!r} has no parameter {name!r}")

    def masks(self, arch: Architecture, **chosen: Any) -> dict[str, np.ndarray]:
        """The mask of the next parameter not in `chosen` (the valid values now), keyed by its name."""
        for p in self.params():
            if p.name not in chosen:
                return {p.name: self.mask(arch, p.name, chosen)}
        return {}

    def is_applicable(self, arch: Architecture) -> bool:
        first = self.params()[0]
        return bool(self.mask(arch, first.name, {}).any())

    def sample(self, arch: Architecture, rng: np.random.Generator) -> dict[str, Any] | None:
        """Sample a valid parameter assignment uniformly per parameter (None when no move is possible)."""
        chosen: dict[str, Any] = {}
        for p in self.params():
            m = self.mask(arch, p.name, chosen)
            idx = np.flatnonzero(m)
            if idx.size == 0:
                return None
            chosen[p.name] = p.choices[int(rng.choice(idx))]
        return chosen

    def check(self, arch: Architecture, params: dict[str, Any]) -> None:
        """Raise MoveError naming the first parameter whose value the mask does not admit."""
        chosen: dict[str, Any] = {}
        names = [p.name for p in self.params()]
        unknown = set(params) - set(names)
        if unknown:
            raise MoveError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; expected {names}")
        for p in self.params():
            if p.name not in params:
                raise MoveError(f"{self.name}: missing parameter {p.name!r}")
            value = params[p.name]
            try:
                i = p.choices.index(value)
            except ValueError:
                raise MoveError(f"{self.name}: {p.name}={value!r} is not one of the choices") from None
            if not self.mask(arch, p.name, chosen)[i]:
                raise MoveError(f"{self.name}: {p.name}={value!r} is not valid for this architecture")
            chosen[p.name] = value

    def __repr__(self) -> str:
        return f"<MoveType {self.name}>"


@dataclass(frozen=True)
class Move:
    """A chosen move: the name of its move type + parameters (what the controller and the store record).
    Its JSON keeps the key "operation" for the name (the stored format of runs, profiles and checkpoints
    written before the names were unified)."""

    name: str
    params: dict[str, Any]

    def apply(self, arch: Architecture, move_types: Registry[MoveType]) -> Architecture:
        """Apply this move to `arch`, looking its move type up in `move_types` (`toolkit.moves`)."""
        return move_types.get(self.name).apply(arch, **self.params)

    def to_json(self) -> dict[str, Any]:
        return {"operation": self.name, "params": dict(self.params)}


#: the former name of `MoveType`, kept so third-party moves written against it keep working
Operation = MoveType
