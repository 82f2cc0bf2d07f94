"""The asynchronous schedule (`search.schedule = "async"`): no round barrier.

Up to `max_in_flight` evaluations run at once (default: `per_round`). When one finishes, its result is
stored at once, the strategy is told, the predictors are refit every `refit_every` finished evaluations
(default: `per_round`), and new candidates are proposed for the free slots: a worker never waits for the
slowest task of a round. The rounds schedule (the default) is unchanged, and reproduces earlier results.

Resume. The order evaluations finish in is the order they are stored (`EvaluationRecord.seq`), and it
decides what is proposed next. A resumed run replays from the start: among the candidates in flight, the
one stored first is the one that finished first, so it is served from the store, and the run retraces the
same proposals; once no candidate in flight is stored, the rest are submitted for real. Nothing stored is
paid for again, and nothing finished is lost.

"Rounds" here are bookkeeping: the i-th proposal belongs to round 1 + i // per_round (the round its
evaluation is stored with); a refit marks the round the run's final state is stored under, and nothing is
written then (the state is stored once, when the run ends: `GroundTruth.save_final_state`).

Refits run in the background (a thread; in line when the predictors share an embedding with the strategy)
while the loop goes on serving the workers: a fit starts once `refit_every` evaluations finished since the
last one started, and is handed to the scorer at the first evaluation after it is done. When that was is
timing, like the order evaluations finish in, so it is logged in the store (artifact `async_refits`) before
it takes effect, and a resumed run hands each fit over at the same evaluation: resume stays exact.
"""

from __future__ import annotations

import heapq
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store.faultpoint import kill_point
from .strategy import Candidate

if TYPE_CHECKING:
    from ..predictors.base import Predictor
    from ..store.base import EvaluationRecord
    from .loop import SearchLoop
    from .reward import Budget
    from .summary import Evaluated

__all__ = ["APPLY_LOG", "run_async"]

#: the store artifact logging when each background fit was handed to the scorer (resume replays it)
APPLY_LOG = "async_refits"


@dataclass
class _Flight:
    """A candidate in flight: proposed, not yet told; `ticket` once submitted to the executor."""

    candidate: Candidate
    round: int
    ticket: int | None = None
    #: whether the store was asked for its evaluation (a resumed run's) since it went in flight
    looked_up: bool = False


class _AsyncRun:
    def __init__(self, loop: SearchLoop):
        self.loop = loop
        self.cfg = loop.config
        self.truth = loop.ground_truth
        self.executor = loop.components.executor
        self.per_round = self.cfg.search.per_round
        self.max_in_flight = self.cfg.search.max_in_flight or self.per_round
        self.refit_every = self.cfg.search.refit_every or self.per_round
        #: in submission order
        self.in_flight: dict[str, _Flight] = {}
        #: hashes stored by this process (the others in flight that the store has were paid for before a resume)
        self.paid: set[str] = set()
        self.proposed = 0  # candidates proposed after the seed: what the round numbers count
        #: proposals the hard-budget screen dropped since one was last taken, by the budget they broke: what
        #: the stop reason of a stalled run names, as on the rounds schedule
        self.screened = 0
        self.screened_by: Counter[Budget] = Counter()
        self.since_refit = 0
        self.checkpoints = 0
        #: (seq, hash, record) of the evaluations in flight that are stored: the next to finish first
        self.ready: list[tuple[int, str, EvaluationRecord]] = []
        # predictors that share an embedding with the strategy are fit in line (the strategy trains it too)
        self.background = (
            ThreadPoolExecutor(1, thread_name_prefix="na-toolkit-refit")
            if loop.components.shared_embedding() is None
            else None
        )
        self.pending: Future[tuple[dict[str, Predictor], list[str]]] | None = None
        #: the evaluations the pending fit learns from (the scorer's rescaling reads the same ones)
        self.pending_history: list[Evaluated] = []
        self.completed = 0  # evaluations finished (told) on this schedule
        self.applied = 0  # background fits handed to the scorer
        #: after how many finished evaluations each background fit was handed over (kept in the store)
        self.apply_log: list[int] = list((self.truth.store.artifact(APPLY_LOG) or {}).get("applied_at", []))

    # ---- proposing -----------------------------------------------------------------------------------
    def fill(self) -> bool:
        """Propose candidates for the free slots; False when the strategy had nothing new to offer."""
        loop = self.loop
        free = min(
            self.max_in_flight - len(self.in_flight),
            self.cfg.evaluations - loop.counters.evaluations - len(self.in_flight),
        )
        if free <= 0:
            return True
        p = loop._propose(free, pending=self.in_flight)
        if p.new:
            self.screened, self.screened_by = 0, Counter()
        else:
            self.screened += p.screened
            self.screened_by.update(p.screened_by)
        if p.known:
            loop.strategy.tell([(p.proposed[i], e.score) for i, e in p.known.items()])
        for c in p.new:
            self.in_flight[c.hash] = _Flight(c, 1 + self.proposed // self.per_round)
            self.proposed += 1
        loop.counters.rounds = max(loop.counters.rounds, max((f.round for f in self.in_flight.values()), default=0))
        return bool(p.new)

    # ---- finishing -----------------------------------------------------------------------------------
    def _check_stored(self) -> None:
        """Note the candidates newly in flight whose evaluation the store already has (a resumed run paid
        for them before): each is looked up once, since only this loop writes the store."""
        for h, flight in self.in_flight.items():
            if not flight.looked_up:
                flight.looked_up = True
                rec = self.truth.store.evaluation(h)
                if rec is not None:
                    heapq.heappush(self.ready, (rec.seq, h, rec))

    def _run_some(self) -> None:
        """Submit what is in flight and not yet running; store every evaluation that finishes next."""
        kill_point("evaluate")  # the fault benchmark's kills (store/faultpoint.py)
        by_ticket: dict[int, _Flight] = {}
        for flight in self.in_flight.values():
            if flight.ticket is None:
                flight.ticket = self.executor.submit(self.truth.evaluation_task(flight.candidate))
            by_ticket[flight.ticket] = flight
        for ticket, result in self.executor.wait(list(by_ticket)):
            flight = by_ticket[ticket]
            rec = self.truth.store_result(flight.candidate, flight.round, result)
            self.paid.add(flight.candidate.hash)
            heapq.heappush(self.ready, (rec.seq, flight.candidate.hash, rec))

    def finish_one(self) -> None:
        """Take the next finished evaluation (the one in flight stored first: from the store when a resumed
        run has it, else from the executor), tell the strategy, and refit and checkpoint on schedule."""
        loop = self.loop
        self._check_stored()
        while not self.ready:
            self._run_some()
        _, h, rec = heapq.heappop(self.ready)
        flight = self.in_flight.pop(h)
        c = flight.candidate
        if h not in self.paid:
            loop.counters.evaluations_replayed += 1
        loop.callbacks.on_evaluation()
        ev = self.truth.record(c, flight.round, rec, loop.scorer)
        loop.strategy.tell([(c, ev.score)])
        self.completed += 1
        self.since_refit += 1
        self._maybe_apply()
        if self.pending is None and self.since_refit >= self.refit_every:
            self._start_refit()

    def _start_refit(self) -> None:
        loop = self.loop
        self.since_refit = 0
        if self.background is None:  # in line
            self.truth.refit(loop.scorer)
            loop.callbacks.on_evaluated(self.truth.history)
            self._checkpoint()
        else:
            self.truth.note_predictions(loop.scorer)  # predicted before the fit learns from them
            loop.callbacks.on_evaluated(self.truth.history)
            self.pending_history = self.truth.history
            self.pending = self.background.submit(self.truth.fit_predictors, self.pending_history)

    def _maybe_apply(self, wait: bool = False) -> None:
        """Hand a background fit to the scorer: in a resumed run's replay, at the evaluation the log says
        it was handed over; live, as soon as it is done (logged first, then handed over)."""
        if self.pending is None:
            return
        n = self.applied
        if n < len(self.apply_log):
            if self.apply_log[n] != self.completed and not wait:
                return
        elif not (wait or self.pending.done()):
            return
        else:
            self.apply_log.append(self.completed)
            self.truth.store.save_artifact(APPLY_LOG, {"applied_at": self.apply_log})
        self.truth.apply_fit(self.pending.result(), self.loop.scorer, self.pending_history)
        self.pending = None
        self.applied += 1
        self._checkpoint()

    def _checkpoint(self) -> None:
        self.checkpoints += 1
        self.loop._checkpoint(self.checkpoints)

    def finish(self) -> None:
        """The end of the run: the predictors fit on everything, checkpointed."""
        self._maybe_apply(wait=True)
        if self.since_refit or not self.checkpoints:
            self.truth.refit(self.loop.scorer)
            self.loop.callbacks.on_evaluated(self.truth.history)
            self.since_refit = 0
            self._checkpoint()

    # ---- the run -------------------------------------------------------------------------------------
    def run(self) -> str:
        try:
            return self._run()
        finally:
            if self.background is not None:
                self.background.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> str:
        loop = self.loop
        stalled = 0
        while True:
            if not self.fill() and not self.in_flight:
                stalled += 1  # nothing new, nothing running: a stall as in the rounds schedule
                if stalled >= self.cfg.search.max_stalled_rounds:
                    self.finish()
                    return loop._stalled_reason(stalled, self.screened, self.screened_by)
                continue
            stalled = 0
            if not self.in_flight:
                break  # the budget is spent
            self.finish_one()
        self.finish()
        return f"the evaluation budget ({self.cfg.evaluations}) is spent"


def run_async(loop: SearchLoop) -> str:
    """Run the rest of `loop`'s search (after the seed) on the asynchronous schedule; returns the stop
    reason."""
    return _AsyncRun(loop).run()
