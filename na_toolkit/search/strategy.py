"""The strategy protocol: how a search strategy talks to the search loop (ask / tell).

The loop (na_toolkit/search/loop.py) is the same for every strategy, so comparisons are fair:

    round 0: the seed is evaluated and told (unless search.evaluate_seed = false)
    while evaluations < budget:
        candidates = strategy.ask(n)              # n = evaluations the loop will pay for this round
        (proposals already evaluated cost nothing: their stored result is told back. When more than n new
         candidates come back, the loop scores them with predictors + time models + reward and keeps the n
         most promising by predicted reward + kappa * uncertainty (UCB); a strategy returning at most n
         new candidates gets all of them evaluated, so random search and evolution stay what they are)
        results = evaluate those for real (executor -> evaluator, and measure on each device), each stored
        predictors are refit on all ground truth so far
        strategy.tell(results)                    # in proposal order, evaluated and already-known alike
    at the end: strategy.state_dict(), the RNG and the predictors are stored (checkpoints of the last round)

A strategy that proposes nothing new for `search.max_stalled_rounds` rounds in a row ends the search.
Inside `ask`, a strategy may call `context.score(archs)` as often as it likes (the Neural Architect
controller trains on these predicted rewards); the loop counts those calls separately from evaluations.

Reproducibility: a strategy draws every random number from `context.rng` (or from seeds drawn from it),
never from global state, so a search is a function of its seed and of the ground truth it is served; a
resumed run replays the strategy from the start with stored ground truth and so retraces the killed run.
A resume never loads a stored `state_dict`. It is stored once, when the run ends (checkpoint `strategy`), for
inspection: its `report` key, when it has one, is the strategy's report (summary.json's `controller`,
controller.png). `load_state_dict` restores a strategy from it (library use; `check_strategy` checks the two
round-trip).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ..validation import check_inherited_init

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from ..moves import Move, MoveType
    from ..predictors.neural import SharedEmbedding


@dataclass(frozen=True)
class Candidate:
    """A proposed architecture and how it was reached from the seed."""

    arch: Architecture
    moves: tuple[Move, ...] = ()
    parent: str | None = None  # hash of the architecture the last move was applied to
    origin: str = ""  # which strategy / mechanism proposed it

    @property
    def hash(self) -> str:
        return self.arch.hash


@dataclass(frozen=True)
class Score:
    """A candidate's metrics under the search's objectives: predicted (real=False) or measured (real=True).

    `metrics` uses units in names: "accuracy" (a fraction 0..1: evaluators report fractions, checked),
    "model_size_bytes", "train_time_s", "latency_ms@<device>", "peak_memory_bytes@<device>",
    "energy_mj@<device>"."""

    reward: float
    metrics: dict[str, float]
    feasible: bool = True
    uncertainty: float = 0.0
    real: bool = False
    violations: tuple[str, ...] = ()
    #: the metrics whose hard budget it breaks (a subset of `violations`)
    hard_violations: tuple[str, ...] = ()


class SearchContext(Protocol):
    """What the loop offers a strategy."""

    seed_arch: Architecture
    move_types: Sequence[MoveType]
    rng: np.random.Generator

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        """Predicted scores (predictors + time models + reward); cheap, counted as predictor calls."""
        ...

    @property
    def evaluated(self) -> dict[str, tuple[Candidate, Score]]:
        """Ground truth so far, by architecture hash."""
        ...

    def shared_embedding(self) -> SharedEmbedding | None:
        """The network embedding the accuracy predictor trains and lends a controller (a `neural` predictor
        with `share_embedding = true`: joint training), else None. Optional: a strategy reads it with
        `getattr(context, "shared_embedding", None)`."""
        ...


class Strategy:
    """Base class of a search strategy. `__init__(context, **options)`; options come from the config."""

    name: ClassVar[str] = ""
    #: its `__init__(**options)` takes any keyword for its subclasses: one without an `__init__` of its own
    #: declares no options (validation.derived_options_model), and the options it is given are checked
    _generic_options_init: ClassVar[bool] = True
    #: `context`, the first parameter of `__init__`, is a dependency the loop passes, not an option
    _option_leading_dependencies: ClassVar[int] = 1
    description: ClassVar[str] = ""

    def __init__(self, context: SearchContext, **options: Any):
        if options:
            check_inherited_init(self, Strategy, options, "strategy")
        self.context = context
        self.options = options

    def ask(self, n: int) -> list[Candidate]:
        raise NotImplementedError

    def tell(self, results: list[tuple[Candidate, Score]]) -> None:
        """Ground-truth results of the candidates the loop evaluated this round."""

    def state_dict(self) -> dict[str, Any]:
        """The strategy's state (JSON-able or torch tensors), stored when the run ends, for inspection; a
        `report` key is its report in summary.json (`controller`). A resume replays instead of loading it."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the state of `state_dict` back (to continue a stored strategy in library code)."""


def random_move(
    arch: Architecture, move_types: Sequence[MoveType], rng: np.random.Generator, tries: int = 8
) -> tuple[Move, Architecture] | None:
    """One random valid move on `arch`: an operation drawn uniformly among those applicable, its parameters
    drawn uniformly among the values its masks admit. None when no operation applies."""
    from ..moves import Move, apply_admitted

    applicable = [op for op in move_types if op.is_applicable(arch)]
    for _ in range(tries):
        if not applicable:
            return None
        op = applicable[int(rng.integers(len(applicable)))]
        params = op.sample(arch, rng)
        if params is None:
            applicable.remove(op)
            continue
        child = apply_admitted(op, arch, params)
        if child.hash != arch.hash:
            return Move(op.name, params), child
    return None


def random_walk(
    start: Architecture, move_types: Sequence[MoveType], rng: np.random.Generator, steps: int, origin: str = ""
) -> Candidate | None:
    """A candidate `steps` random moves away from `start` (fewer when a dead end is reached; None if no
    move applies at all)."""
    arch, moves, parent = start, [], None
    for move, child in walk_steps(start, move_types, rng, steps):
        parent, arch = arch.hash, child
        moves.append(move)
    if not moves:
        return None
    return Candidate(arch, tuple(moves), parent, origin)


def walk_steps(
    start: Architecture, move_types: Sequence[MoveType], rng: np.random.Generator, steps: int
) -> Iterator[tuple[Move, Architecture]]:
    """The (move, network) of each step of a uniformly random walk (`random_move`) of up to `steps` moves from
    `start`, ending early at a dead end."""
    arch = start
    for _ in range(steps):
        step = random_move(arch, move_types, rng)
        if step is None:
            return
        yield step
        arch = step[1]


@dataclass
class RoundLog:
    """What happened in one round of the loop (for progress output and the run store)."""

    round: int
    proposed: int
    evaluated: list[str] = field(default_factory=list)
    best_reward: float | None = None
