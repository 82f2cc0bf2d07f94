"""Progress callbacks of the search loop: the loop reports what happens, a callback shows or records it.

A callback subclasses `SearchCallback` and overrides what it needs; `run_search(progress=True)` uses
`ProgressBar` (a tqdm bar on stderr: one tick per ground-truth evaluation, the best feasible reward so
far). Every search also gets `RoundLog`: one line per round on the `na_toolkit.search` logger (INFO),
which the CLI shows with `--verbose` or writes with `--log-file`. Callbacks only observe: they never change
what the search does.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .summary import Evaluated


class SearchCallback:
    """What the loop reports, in order: `on_start` once, `on_evaluation` as each ground-truth evaluation is
    stored or served from the store, `on_evaluated` after each batch with every evaluation so far,
    `on_round_end` after each round that evaluated something, `on_end` once (also when the run fails)."""

    def on_start(self, evaluation_budget: int) -> None:
        pass

    def on_evaluation(self) -> None:
        pass

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:
        pass

    def on_round_end(self, round: int) -> None:
        pass

    def on_end(self) -> None:
        pass


_HOOKS = ("on_start", "on_evaluation", "on_evaluated", "on_round_end", "on_end")


def checked_callbacks(callbacks: Any) -> list[SearchCallback]:
    """`run_search(callbacks=...)` as a list, checked before a run folder is made: a TypeError for one
    callback not in a list, or for an item that is no callback (a function, a class instead of its instance),
    rather than an AttributeError from the loop once the run exists."""
    if isinstance(callbacks, SearchCallback) or not isinstance(callbacks, Iterable) or isinstance(callbacks, str):
        hint = " (one callback: callbacks=[it])" if isinstance(callbacks, SearchCallback) else ""
        raise TypeError(f"callbacks: a list of SearchCallback objects, got {type(callbacks).__name__}{hint}")
    given = list(callbacks)
    for i, c in enumerate(given):
        if isinstance(c, type) or not (
            isinstance(c, SearchCallback) or all(callable(getattr(c, h, None)) for h in _HOOKS)
        ):
            what = f"the class {c.__name__} (give an instance)" if isinstance(c, type) else type(c).__name__
            raise TypeError(
                f"callbacks[{i}]: {what} is no SearchCallback: subclass na_toolkit.search.SearchCallback and "
                f"override what it needs ({', '.join(_HOOKS)})"
            )
    return given


class Callbacks(SearchCallback):
    """Several callbacks as one, called in the order given."""

    def __init__(self, callbacks: Sequence[SearchCallback] = ()):
        self.callbacks = list(callbacks)

    def on_start(self, evaluation_budget: int) -> None:
        for c in self.callbacks:
            c.on_start(evaluation_budget)

    def on_evaluation(self) -> None:
        for c in self.callbacks:
            c.on_evaluation()

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:
        for c in self.callbacks:
            c.on_evaluated(evaluated)

    def on_round_end(self, round: int) -> None:
        for c in self.callbacks:
            c.on_round_end(round)

    def on_end(self) -> None:
        for c in self.callbacks:
            c.on_end()


class ProgressBar(SearchCallback):
    """A tqdm bar over the evaluation budget, with the best feasible reward and the feasible count."""

    def __init__(self) -> None:
        self._bar: Any = None

    def on_start(self, evaluation_budget: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=evaluation_budget, desc="search", unit="eval", file=sys.stderr, dynamic_ncols=True)

    def on_evaluation(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:
        if self._bar is None:
            return
        feasible = [e for e in evaluated if e.error is None and e.score.feasible]
        best = max((e.score.reward for e in feasible), default=None)
        self._bar.set_postfix(best_reward="-" if best is None else f"{best:.4f}", feasible=len(feasible), refresh=True)

    def on_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RoundLog(SearchCallback):
    """One INFO line per round on the `na_toolkit.search` logger: the networks evaluated in the round (how
    many feasible, failed), where they came from, the moves that made them, the round's best reward, the
    run's best feasible so far, and how far the accuracy predicted for them before evaluation was from the
    measured one (mean absolute error in points)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("na_toolkit.search")
        self._history: Sequence[Evaluated] = ()
        self._seen = 0
        self._budget = 0

    def on_start(self, evaluation_budget: int) -> None:
        self._budget = evaluation_budget
        self.log.info("search started: budget %d evaluations", evaluation_budget)

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:
        self._history = evaluated

    def on_round_end(self, round: int) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        new = list(self._history[self._seen :])
        self._seen = len(self._history)
        ok = [e for e in new if e.error is None]
        feasible = [e for e in ok if e.score.feasible]
        origins = Counter(e.candidate.origin for e in new)
        moves = Counter(m.name for e in new for m in e.candidate.moves[-1:])
        best_round = max((e.score.reward for e in ok), default=None)
        # predicted (before evaluation) against measured accuracy, in points
        errors = [
            abs(e.predicted_accuracy - e.score.metrics["accuracy"]) * 100
            for e in ok
            if e.predicted_accuracy is not None and "accuracy" in e.score.metrics
        ]
        predicted = f"{sum(errors) / len(errors):.2f} points off over {len(errors)}" if errors else "no predictor yet"
        best_run = max((e.score.reward for e in self._history if e.error is None and e.score.feasible), default=None)
        self.log.info(
            "round %d: %d evaluated (%d feasible, %d failed), %d/%d of the budget; from %s; last moves %s; "
            "best reward this round %s, best feasible so far %s; predicted vs measured accuracy: %s",
            round,
            len(new),
            len(feasible),
            len(new) - len(ok),
            self._seen,
            self._budget,
            ", ".join(f"{k} x{v}" for k, v in origins.most_common()) or "-",
            ", ".join(f"{k} x{v}" for k, v in moves.most_common()) or "-",
            "-" if best_round is None else f"{best_round:.4f}",
            "-" if best_run is None else f"{best_run:.4f}",
            predicted,
        )

    def on_end(self) -> None:
        self.log.info("search ended after %d evaluations", self._seen)
