"""`check_move`: the move contract (docs/plugin_hooks.md, `na_register_moves`; docs/moves.md) as one call.

On every seed network of the toolkit (or the ones given): each parameter's mask is a boolean array with one
entry per choice (a position: one per node); every value a mask admits, given admitted earlier values,
completes to an assignment that applies; what `apply` returns is a new, valid Architecture (its JSON reads
back to the same hash) that keeps the network's output shape; `apply` never changes its input; a value the
mask refuses, or one outside the choices, raises MoveError; `sample` draws an admitted assignment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MoveError
from ..ir.architecture import Architecture
from ..moves import MoveType, ParamSpec
from ._common import expect, fail, listed, resolve, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class MoveSeedResult:
    """What `check_move` found on one seed network (every check passed)."""

    seed: str
    nodes: int
    #: admitted first-parameter values (0: the move applies nowhere on this network)
    admitted_first: int
    #: assignments applied (each one checked)
    applied: int
    #: refused assignments tried (each raised MoveError)
    refused: int


def check_move(
    move_type: MoveType | str,
    toolkit: Toolkit | None = None,
    seeds: Sequence[str | Architecture] | None = None,
    *,
    keeps_output_shape: bool = True,
    deep_prefixes: int = 3,
    must_apply_somewhere: bool = True,
    seed: int = 0,
) -> list[MoveSeedResult]:
    """Check a move type against its contract; raise AssertionError (`ConformanceError`) naming the move,
    the network, the assignment and what broke.

    move_type: the instance, or its name in `toolkit.moves`. toolkit: the toolkit whose layer types the
    seeds are built with (default: the built-ins and the installed plugins; a plugin's tests pass theirs).
    seeds: seed names of the toolkit or architectures (default: every registered seed).
    On each network, every admitted value of the first parameter is applied (completed with values drawn
    from the later masks); for `deep_prefixes` of them (spread over the admitted ones), every admitted
    value of each later parameter is applied too, and refused values are tried. `keeps_output_shape`: the
    network's output (the classifier) keeps its shape, as every built-in move does. `must_apply_somewhere`:
    fail when the move applies to none of the networks. `seed`: the draws of the completions."""
    tk = toolkit_or_default(toolkit)
    name, move = resolve(tk.moves, move_type, "move")
    label = f"move {name!r}"
    expect(isinstance(move, MoveType), label, f"is a {type(move).__name__}, not a na_toolkit.moves.MoveType")
    specs = _check_params(move, label)
    rng = np.random.default_rng(seed)
    results = []
    for item in listed(seeds, "seeds") if seeds is not None else tk.seeds.names():
        arch = tk.seed(item) if isinstance(item, str) else item
        seed_name = item if isinstance(item, str) else (item.name or item.hash)
        checker = _Checker(move, specs, arch, f"{label} on {seed_name!r}", keeps_output_shape, rng)
        results.append(checker.run(seed_name, deep_prefixes))
    if must_apply_somewhere:
        expect(any(r.applied for r in results), label, f"applies to none of the networks {[r.seed for r in results]}")
    return results


def _check_params(move: MoveType, label: str) -> tuple[ParamSpec, ...]:
    expect(isinstance(move.name, str) and move.name, label, "has no name")
    expect(isinstance(move.description, str) and move.description, label, "has no description")
    specs = tuple(move.params())
    expect(
        specs and all(isinstance(p, ParamSpec) for p in specs), label, f"params() gave {specs!r}: a tuple of ParamSpec"
    )
    names = [p.name for p in specs]
    expect(len(set(names)) == len(names), label, f"parameter names repeat: {names}")
    for p in specs:
        expect(p.is_position or len(p.choices) > 0, label, f"parameter {p.name!r} has no choices")
        expect(
            len(set(map(repr, p.choices))) == len(p.choices),
            label,
            f"parameter {p.name!r} repeats a choice: {p.choices}",
        )
    return specs


class _Checker:
    """The checks of one move on one network."""

    def __init__(
        self,
        move: MoveType,
        specs: tuple[ParamSpec, ...],
        arch: Architecture,
        where: str,
        keeps_output_shape: bool,
        rng: np.random.Generator,
    ):
        self.move, self.specs, self.arch, self.where = move, specs, arch, where
        self.keeps_output_shape, self.rng = keeps_output_shape, rng
        self.applied = self.refused = 0
        # what apply must leave alone; compared after every apply (cheap) and as JSON at the end (complete)
        self.nodes, self.shapes, self.name, self.output = arch.nodes, arch.shapes, arch.name, arch.output
        self.attrs = {n.id: arch.attrs(n.id) for n in arch.nodes}
        self.json = arch.dumps(indent=None)

    def run(self, seed_name: str, deep_prefixes: int) -> MoveSeedResult:
        move, specs, arch, where = self.move, self.specs, self.arch, self.where
        first = specs[0]
        admitted = np.flatnonzero(self.mask(first, {}))
        for v in admitted:  # every admitted first value completes to an assignment that applies
            self.apply(self.completion({first.name: first.value_at(int(v))}), round_trip=False, twice=True)
        spread = np.linspace(0, admitted.size - 1, max(deep_prefixes, 0) if admitted.size else 0)
        for v in admitted[np.unique(spread.round().astype(int))]:
            prefix: dict[str, Any] = {first.name: first.value_at(int(v))}
            round_trip = True
            for k, p in enumerate(specs[1:], start=1):
                for i in np.flatnonzero(self.mask(p, prefix)):  # every admitted value of each later parameter
                    self.apply(self.completion({**prefix, p.name: p.value_at(int(i))}), round_trip)
                    round_trip = False
                prefix = self.completion(prefix, specs[: k + 1])
            self.refusals(prefix)
        if admitted.size == 0:
            self.refusals({})
        else:
            sampled = move.sample(arch, self.rng)
            expect(sampled is not None, where, "sample() found nothing although the first mask admits values")
            try:
                move.check(arch, dict(sampled or {}))
            except MoveError as exc:
                fail(where, f"sample() drew an assignment its masks refuse: {exc}")
        expect(arch.dumps(indent=None) == self.json, where, "apply changed its input architecture (apply must be pure)")
        return MoveSeedResult(seed_name, len(arch.nodes), int(admitted.size), self.applied, self.refused)

    def mask(self, spec: ParamSpec, chosen: dict[str, Any]) -> np.ndarray:
        """The move's own mask, checked: an ndarray of bool with `spec.size_for(arch)` entries."""
        where = self.where
        try:
            m = self.move.mask(self.arch, spec.name, dict(chosen))
        except Exception as exc:
            fail(where, f"mask({spec.name!r}, chosen={chosen}) raised {type(exc).__name__}: {exc}")
        expect(isinstance(m, np.ndarray), where, f"mask({spec.name!r}) returned {type(m).__name__}, not a numpy array")
        n = spec.size_for(self.arch)
        expect(m.dtype == np.bool_, where, f"mask({spec.name!r}, chosen={chosen}) has dtype {m.dtype}, expected bool")
        expect(
            m.shape == (n,),
            where,
            f"mask({spec.name!r}, chosen={chosen}) has shape {m.shape}, expected ({n},)"
            + (" (a position mask has one entry per node, len(arch.nodes))" if spec.is_position else ""),
        )
        return m

    def completion(self, chosen: dict[str, Any], specs: Sequence[ParamSpec] | None = None) -> dict[str, Any]:
        """`chosen` completed with values drawn from the masks; fails when an admitted prefix has none."""
        out = dict(chosen)
        for p in self.specs if specs is None else specs:
            if p.name in out:
                continue
            admitted = np.flatnonzero(self.mask(p, out))
            expect(
                admitted.size, self.where, f"{out} was admitted but no value of {p.name!r} completes it (a dead end)"
            )
            out[p.name] = p.value_at(int(self.rng.choice(admitted)))
        return out

    def apply(self, params: dict[str, Any], round_trip: bool, twice: bool = False) -> Architecture:
        arch, where = self.arch, self.where
        try:
            new = self.move.apply(arch, **params)
        except Exception as exc:
            fail(where, f"apply({params}) of an admitted assignment raised {type(exc).__name__}: {exc}")
        self.applied += 1
        expect(
            arch.nodes == self.nodes
            and (arch.name, arch.output) == (self.name, self.output)
            and arch.shapes == self.shapes
            and {n.id: arch.attrs(n.id) for n in arch.nodes} == self.attrs,
            where,
            f"apply({params}) changed its input architecture (apply must be pure)",
        )
        expect(
            isinstance(new, Architecture), where, f"apply({params}) returned {type(new).__name__}, not an Architecture"
        )
        expect(new is not arch, where, f"apply({params}) returned its input")
        old = set(arch.nodes)
        try:  # what the move wrote must serialise (a numpy int in an attribute would not)
            json.dumps([n.to_json() for n in new.nodes if n not in old])
        except (TypeError, ValueError) as exc:
            fail(where, f"apply({params}) made nodes whose JSON fails: {exc}")
        if round_trip:
            back = Architecture.loads(new.dumps(indent=None), new.layer_types)
            expect(back.hash == new.hash, where, f"the network apply({params}) made does not read back from its JSON")
        if twice:
            again = self.move.apply(arch, **params)  # a run replays a candidate's moves from its seed
            expect(
                getattr(again, "hash", None) == new.hash,
                where,
                f"apply({params}) twice made two networks ({new.hash}, {getattr(again, 'hash', again)!r}): apply must "
                "be deterministic (a search replays a candidate's moves from the seed; draw nothing at random in "
                "apply: make the choice a parameter)",
            )
        if self.keeps_output_shape:
            expect(
                new.output_shape == arch.output_shape,
                where,
                f"apply({params}) changed the output shape {arch.output_shape} -> {new.output_shape}",
            )
        return new

    def refusals(self, prefix: dict[str, Any]) -> None:
        self.refused += _check_refusals(self.move, self.specs, self.arch, prefix, self.where, self.mask)


def _check_refusals(
    move: MoveType,
    specs: tuple[ParamSpec, ...],
    arch: Architecture,
    prefix: dict[str, Any],
    where: str,
    mask: Callable[[ParamSpec, dict[str, Any]], np.ndarray],
) -> int:
    """For each parameter: a value its mask refuses after the admitted `prefix` (the first refused one),
    and a value outside its choices, with any values after it, must raise MoveError."""
    tried = 0
    chosen: dict[str, Any] = {}
    for p in specs:
        m = mask(p, chosen)
        bad_values: list[Any] = [p.value_at(int(i)) for i in np.flatnonzero(~m)[:1]]
        bad_values.append(len(arch.nodes) if p.is_position else _not_a_choice(p))
        rest = {
            q.name: (0 if q.is_position else q.choices[0]) for q in specs if q.name not in chosen and q.name != p.name
        }
        for bad in bad_values:
            params = {**chosen, p.name: bad, **rest}
            try:
                move.apply(arch, **params)
            except MoveError:
                tried += 1
                continue
            except Exception as exc:
                fail(
                    where,
                    f"apply({params}) of a refused {p.name}={bad!r} raised {type(exc).__name__}, not MoveError: {exc}",
                )
            fail(
                where,
                f"apply({params}) accepted {p.name}={bad!r}, which its mask refuses "
                "(call self.check(arch, params) first)",
            )
        if p.name not in prefix:
            break
        chosen[p.name] = prefix[p.name]
    return tried


class _NotAChoice:
    """A value no parameter offers."""

    def __repr__(self) -> str:
        return "<not a choice>"


def _not_a_choice(p: ParamSpec) -> Any:
    """A value of the choices' own type that is not among them (what a caller plausibly passes by mistake)."""
    if p.choices and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p.choices):
        return max(p.choices) + 1
    if p.choices and all(isinstance(c, str) for c in p.choices):
        return "|".join(p.choices) + "?"
    return _NotAChoice()
