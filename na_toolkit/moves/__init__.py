"""The move protocol: a `MoveType` (a kind of move, registered through `na_register_moves`, as a
`LayerType` is a kind of node) edits an Architecture, purely (IR -> IR); a `Move` is one chosen move: the
move type's name and its parameter values.

Each move type declares an ordered parameter space (`params()`); the controller samples one parameter at a
time, each from a categorical over that parameter's choices, with `mask(arch, param, chosen)` removing the
values that admit no valid completion given the parameters already chosen. The invariant every move type
keeps: a full assignment whose every value was admitted by its mask applies without error.

Position parameters index `arch.nodes` (topological order) and have one choice per node of the
architecture asked about, however many: their choices are `spec.choices_for(arch)` (0 .. len(arch.nodes)-1)
and their masks have `len(arch.nodes)` entries. Moves written when positions were capped at 128 choices
(`MAX_POSITIONS`) give 128-entry masks; `admitted` (what every caller asks instead of `mask`) brings any
position mask to the architecture's length, so those moves keep working on networks of any size (they
just never pick a node past the 128th).

A move type may also hand a parent's trained weights to its child (`inherit_weights`, Net2Net-style
function-preserving transformations; `na_toolkit.moves.inherit`): by default it does not, and the child
trains from scratch.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ComponentError, MoveError, NAToolkitError
from ..ir.architecture import Architecture
from ..registry import Registry
from .inherit import Inherited, NodeWeights

#: Deprecated: positions are no longer capped (a position has one choice per node of the architecture).
#: Kept so that moves written against the former contract, which built 128-entry position masks with it,
#: still import; `normalise_mask` accepts their masks. New code uses `ParamSpec.size_for(arch)`.
MAX_POSITIONS = 128


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a move: its name and its fixed choices, or (`is_position`, made by
    `ParamSpec.position`) a node index, whose choices are the architecture's: `choices_for(arch)`.
    A position's own `choices` are empty (any given are ignored: positions are node indices)."""

    name: str
    choices: tuple[Any, ...]
    is_position: bool = False

    @classmethod
    def position(cls, name: str) -> ParamSpec:
        return cls(name, (), is_position=True)

    def choices_for(self, arch: Architecture) -> Sequence[Any]:
        """The values this parameter may take on `arch` (a position: 0 .. len(arch.nodes)-1)."""
        return range(len(arch.nodes)) if self.is_position else self.choices

    def size_for(self, arch: Architecture) -> int:
        """The number of choices on `arch`: the length of this parameter's masks there."""
        return len(arch.nodes) if self.is_position else len(self.choices)

    def value_at(self, index: int) -> Any:
        """The value at `index` of the choices (a position's value is its index: a node index, an int)."""
        return int(index) if self.is_position else self.choices[index]

    def __len__(self) -> int:
        """The number of fixed choices (0 for a position: theirs depends on the network, `size_for`)."""
        return len(self.choices)

    def __bool__(self) -> bool:  # a position has no fixed choices, and is still a parameter
        return True


def position_index(value: Any) -> int | None:
    """`value` as a node index (an int >= 0; numpy ints too, as a controller may give), or None."""
    if isinstance(value, bool):
        return None
    try:
        i = operator.index(value)
    except TypeError:
        return None
    return i if i >= 0 else None


def normalise_mask(move_name: str, spec: ParamSpec, mask: Any, arch: Architecture) -> np.ndarray:
    """A move's mask of `spec` on `arch` as a boolean array of `spec.size_for(arch)` entries.

    A position mask of another length comes from a move written for the former 128-position contract (or
    one that sized it by hand): a shorter one is padded with False (those nodes are not admitted), a longer
    one may only admit existing nodes. Anything else is the move's bug: MoveError naming it."""
    m = np.asarray(mask, dtype=bool)
    n = spec.size_for(arch)
    if m.shape == (n,):
        return m
    if m.ndim != 1 or not spec.is_position:
        raise MoveError(
            f"move {move_name!r}: the mask of {spec.name!r} has shape {m.shape}, expected ({n},) "
            "(one entry per choice); fix the move's mask()"
        )
    if m.size < n:
        return np.concatenate([m, np.zeros(n - m.size, dtype=bool)])
    extra = np.flatnonzero(m[n:])
    if extra.size:
        raise MoveError(
            f"move {move_name!r}: its mask of position {spec.name!r} admits position {n + int(extra[0])}, "
            f"but the network has {n} nodes; a position mask has one entry per node (len(arch.nodes))"
        )
    return m[:n]


class MoveType:
    """Base class of a move. Subclasses set `name`, `description`, implement `params`, `mask`, `apply`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def params(self) -> tuple[ParamSpec, ...]:
        raise NotImplementedError

    def mask(self, arch: Architecture, param: str, chosen: dict[str, Any]) -> np.ndarray:
        """Boolean array over `param`'s choices on `arch` (a position: one entry per node,
        `len(arch.nodes)`): True where the value has at least one valid completion, given the earlier
        parameters in `chosen`. Callers ask `admitted`, which checks and normalises what this gives."""
        raise NotImplementedError

    def apply(self, arch: Architecture, **params: Any) -> Architecture:
        """A new Architecture with the move applied; `arch` is never changed. MoveError if invalid."""
        raise NotImplementedError

    def inherit_weights(
        self,
        parent: Architecture,
        child: Architecture,
        params: dict[str, Any],
        weights: NodeWeights,
        rng: np.random.Generator,
    ) -> Inherited | None:
        """The child's weights from the parent's, for a child this move made from `parent` with `params`:
        an `Inherited` (weights by node id, and whether the child's function is the parent's "exact"ly or
        "approximate"ly), or None when this move cannot preserve the function (the child trains from
        scratch). A move opts in by overriding this (na_toolkit.moves.inherit has the helpers; draw any
        randomness from `rng`). Default: None, not function-preserving."""
        return None

    # ---- derived helpers ----------------------------------------------------------------------------
    def param(self, name: str) -> ParamSpec:
        for p in self.params():
            if p.name == name:
                return p
        raise MoveError(f"move {self.name!r} has no parameter {name!r}")

    def admitted(self, arch: Architecture, param: str, chosen: dict[str, Any]) -> np.ndarray:
        """`mask`, normalised (`normalise_mask`): a boolean array of `param`'s size on `arch`."""
        return normalise_mask(self.name, self.param(param), self.mask(arch, param, chosen), arch)

    def masks(self, arch: Architecture, **chosen: Any) -> dict[str, np.ndarray]:
        """The mask of the next parameter not in `chosen` (the valid values now), keyed by its name."""
        for p in self.params():
            if p.name not in chosen:
                return {p.name: self.admitted(arch, p.name, chosen)}
        return {}

    def is_applicable(self, arch: Architecture) -> bool:
        first = self.params()[0]
        return bool(self.admitted(arch, first.name, {}).any())

    def sample(self, arch: Architecture, rng: np.random.Generator) -> dict[str, Any] | None:
        """Sample a valid parameter assignment uniformly per parameter (None when no move is possible)."""
        chosen: dict[str, Any] = {}
        for p in self.params():
            m = self.admitted(arch, p.name, chosen)
            idx = np.flatnonzero(m)
            if idx.size == 0:
                return None
            chosen[p.name] = p.value_at(int(rng.choice(idx)))
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
            if p.is_position:
                index = position_index(value)
                if index is None:
                    raise MoveError(f"{self.name}: {p.name}={value!r} is not a node index (an int >= 0)")
                if index >= len(arch.nodes):
                    raise MoveError(
                        f"{self.name}: {p.name}={index} is outside this architecture's {len(arch.nodes)} nodes"
                    )
            else:
                try:
                    index = p.choices.index(value)
                except ValueError:
                    raise MoveError(f"{self.name}: {p.name}={value!r} is not one of the choices") from None
            if not self.admitted(arch, p.name, chosen)[index]:
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


class MoveContractError(ComponentError):
    """A move broke its contract while a strategy used it: `apply` refused parameters its masks admitted (the
    invariant of this module's docstring), or returned no Architecture. `move`: its name; `detail`: what it did.
    A search names the move's plugin too (`naming_move_plugins`)."""

    def __init__(self, move: str, detail: str) -> None:
        super().__init__(f"move {move!r}: {detail}")
        self.move, self.detail = move, detail


def apply_admitted(op: MoveType, arch: Architecture, params: dict[str, Any]) -> Architecture:
    """`op.apply(arch, **params)` for `params` its masks admitted: MoveContractError when apply refuses them
    (a mask letting an invalid value through would otherwise stall a search in silence) or returns no
    Architecture."""
    try:
        child = op.apply(arch, **params)
    except MoveContractError:
        raise
    except NAToolkitError as exc:
        raise MoveContractError(
            op.name,
            f"its masks admit {params} on network {arch.hash}, but apply refused them ({exc}); every assignment "
            "the masks admit must apply: make mask() admit only the values apply takes "
            "(na_toolkit.testing.check_move finds them)",
        ) from exc
    if not isinstance(child, Architecture):
        raise MoveContractError(op.name, f"apply returned {type(child).__name__}, not an Architecture")
    return child


@contextmanager
def naming_move_plugins(moves: Registry[MoveType]) -> Iterator[None]:
    """Run a strategy's step: a MoveContractError gets the move's plugin in its message (a ComponentError)."""
    try:
        yield
    except MoveContractError as exc:
        try:
            plugin = moves.plugin_of(exc.move)
        except NAToolkitError:
            raise exc from None
        raise ComponentError(f"move {exc.move!r} of plugin {plugin}: {exc.detail}") from exc.__cause__


#: the former name of `MoveType`, kept so third-party moves written against it keep working
Operation = MoveType
