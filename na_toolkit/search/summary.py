"""What a search found: its counters, its evaluated candidates, and `summarize`, the pure function that
makes the `SearchResult` (and so summary.json) from them.

`summarize` reads nothing but its arguments: the Pareto set over accuracy, model size and each device's
latency; the best feasible candidate per device and over all devices (highest accuracy; ties go to the
higher reward, then the smaller model, the earlier evaluated: one order for every device); and, where none is
feasible, why (the candidate closest to feasible and the budgets it breaks).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UnknownNetworkError, did_you_mean
from .diagnostics import CAPACITY_ADVICE, is_capacity
from .evaluations_file import evaluation_rows
from .figure_sources import metric_sources, scoring_sources
from .pareto import ParetoArchive, search_objectives
from .reward import split_metric
from .strategy import Candidate, Score

if TYPE_CHECKING:
    from ..datasets.descriptor import DatasetDescriptor
    from .config import SearchConfig


@dataclass
class Counters:
    """What the search paid for and what it computed, counted separately."""

    #: ground-truth evaluations (the budget), failed ones included
    evaluations: int = 0
    #: of those, served from the run store (a resumed run replaying its past)
    evaluations_replayed: int = 0
    failed_evaluations: int = 0
    #: ground-truth measurements by a device's `measure` time model (or one that measures), replayed ones included
    measurements: int = 0
    #: of those, served from the run store
    measurements_replayed: int = 0
    #: architectures whose accuracy (or training time) a predictor predicted
    predictor_calls: int = 0
    predictor_fits: int = 0
    #: time-model estimates computed (cache misses)
    time_model_calls: int = 0
    #: calls of context.score (by the strategy and the loop) and the architectures they scored
    score_calls: int = 0
    candidates_scored: int = 0
    #: strategy.ask calls and what they proposed
    strategy_asks: int = 0
    proposed: int = 0
    #: proposals already evaluated (served without an evaluation)
    duplicates: int = 0
    #: proposals dropped before evaluation for breaking a hard budget known for free (search.screen_hard_budgets)
    screened: int = 0
    rounds: int = 0


@dataclass(frozen=True)
class Evaluated:
    """One ground-truth evaluation of the run."""

    seq: int
    round: int
    candidate: Candidate
    score: Score
    result: dict[str, Any]
    error: str | None
    #: device → meets the global budgets and that device's
    feasible_for: dict[str, bool]
    #: the accuracy the predictor gave it before learning from it (None: no predictor fitted yet)
    predicted_accuracy: float | None = None

    @property
    def hash(self) -> str:
        return self.candidate.hash

    def __repr__(self) -> str:  # one line: the candidate, its reward and metrics (not the evaluator's history)
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in self.score.metrics.items())
        tail = f"error={self.error!r}" if self.error is not None else f"feasible={self.score.feasible}, {metrics}"
        return (
            f"Evaluated(seq={self.seq}, hash={self.hash!r}, origin={self.candidate.origin!r}, "
            f"reward={self.score.reward:.4g}, {tail})"
        )

    def to_json(self, with_arch: bool = False) -> dict[str, Any]:
        out = {
            "seq": self.seq,
            "round": self.round,
            "arch_hash": self.hash,
            "name": self.candidate.arch.name,
            "origin": self.candidate.origin,
            "parent": self.candidate.parent,
            "moves": [m.to_json() for m in self.candidate.moves],
            "reward": self.score.reward,
            "feasible": self.score.feasible,
            "feasible_for": dict(self.feasible_for),
            "violations": list(self.score.violations),
            "metrics": dict(self.score.metrics),
            "predicted_accuracy": self.predicted_accuracy,
            "error": self.error,
        }
        if with_arch:
            out["arch"] = self.candidate.arch.to_json()
        return out


def seed_metrics(evaluated: Sequence[Evaluated]) -> dict[str, float] | None:
    """The metrics of the seed's evaluation (measured where the device measures), None when the seed was
    not evaluated or its evaluation failed."""
    seed = next((e for e in evaluated if e.candidate.origin == "seed" and e.error is None), None)
    return None if seed is None else dict(seed.score.metrics)


@dataclass
class SearchResult:
    """What `run_search` returns (and summary.json holds)."""

    run_id: str
    run_dir: Path
    status: str
    stop_reason: str
    seed_hash: str
    devices: list[str]
    evaluated: list[Evaluated]
    pareto: list[str]
    #: device → hash of the best feasible candidate (None: no candidate met that device's budgets)
    best: dict[str, str | None]
    #: the best candidate that meets every budget of every device
    best_overall: str | None
    #: device (or "all") → why no candidate is feasible there
    infeasible: dict[str, str]
    counters: Counters
    elapsed_s: float
    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    strategy: str = ""
    evaluation_budget: int = 0
    #: the run's provenance artifact: one event per start / resume (search/provenance.py)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: what a learning strategy reported of itself (neural-architect: per-update series, totals), or None
    controller: dict[str, Any] | None = None
    #: the accuracy a network needed to enter the Pareto front (`pareto_min_accuracy`)
    pareto_min_accuracy: float = 0.0
    #: device -> the factor its time model's latency estimates ended the run scaled by, with the number of
    #: measured networks and the spread of their measured/estimated ratios (`Scorer.rescale`; a device not
    #: rescaled, or with too few measurements yet, is absent)
    latency_scales: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __repr__(self) -> str:  # one line however many evaluations: a notebook cell prints this, not all of them
        best = ", ".join(f"{d}={h}" for d, h in self.best.items())
        return (
            f"<SearchResult {self.run_id} {self.status}: {len(self.evaluated)} evaluated, "
            f"{len(self.pareto)} on the Pareto front, best {{{best}}}, run_dir={str(self.run_dir)!r}>"
        )

    def get(self, arch_hash: str) -> Evaluated:
        """The evaluation of the network with hash `arch_hash` (`best`, `pareto` and `rows()` give hashes);
        an unknown hash raises UnknownNetworkError (a KeyError)."""
        for e in self.evaluated:
            if e.hash == arch_hash:
                return e
        hashes = [e.hash for e in self.evaluated]
        hint = did_you_mean(str(arch_hash), hashes)
        raise UnknownNetworkError(
            f"run {self.run_id} evaluated no network with hash {arch_hash!r}.{hint} Give the full hash of one of "
            f"its {len(hashes)} evaluated networks (result.best, result.pareto, result.rows())"
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every evaluation as a flat dict, in evaluation order: the rows of `evaluations.jsonl`, which
        `write_evaluations` writes from this very method (seq, round, arch_hash, name, origin, parent, reward,
        feasible, predicted_accuracy, error, one key per metric with its unit in the name, each device figure
        followed by its source `<figure>_source` from the run's provenance, then violations, feasible_for, moves
        and arch as JSON). `pandas.DataFrame(result.rows())` makes a table of them; pandas is not needed
        otherwise."""
        return evaluation_rows(self.evaluated, metric_sources(self.provenance))

    def summary(self) -> dict[str, Any]:
        def entry(h: str | None) -> dict[str, Any] | None:
            return None if h is None else self.get(h).to_json()

        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "stop_reason": self.stop_reason,
            "seed_hash": self.seed_hash,
            "devices": self.devices,
            "best": {d: entry(h) for d, h in self.best.items()},
            "best_overall": entry(self.best_overall),
            "infeasible": dict(self.infeasible),
            "pareto": [entry(h) for h in self.pareto],
            "evaluated": [e.to_json() for e in self.evaluated],
            "counters": asdict(self.counters),
            "elapsed_s": self.elapsed_s,
            "warnings": list(self.warnings),
            "outputs": dict(self.outputs),
            "budgets": list(self.budgets),
            "strategy": self.strategy,
            "evaluation_budget": self.evaluation_budget,
            "provenance": self.provenance,
            # per device figure: measured or estimated, how, by which model (from the provenance)
            "metric_sources": metric_sources(self.provenance),
            # per device figure measured by its `measure`: the time model's estimate that scored the candidates
            "scoring_sources": scoring_sources(self.provenance),
            "controller": self.controller,
            "pareto_min_accuracy": self.pareto_min_accuracy,
            "latency_scales": self.latency_scales,
            "config": self.config,
        }


def summarize(
    config: SearchConfig,
    evaluated: Sequence[Evaluated],
    *,
    run_id: str,
    run_dir: Path,
    stop_reason: str,
    seed_hash: str,
    counters: Counters,
    elapsed_s: float,
    warnings: Sequence[str] = (),
    provenance: dict[str, Any] | None = None,
    config_doc: Mapping[str, Any] | None = None,
    latency_scales: Mapping[str, Mapping[str, Any]] | None = None,
) -> SearchResult:
    """The result of a finished search from its evaluations (in evaluation order) and what it counted.
    `config_doc`: the config as the run stored it (with the defaults it chose: a learned model's statistic),
    summary.json's `config`; default `config.to_json()`. `latency_scales`: the scorer's rescaling factors
    (`SearchResult.latency_scales`)."""
    devices = [d.name for d in config.devices]
    evaluated = list(evaluated)
    ok = [e for e in evaluated if e.error is None]
    archive = ParetoArchive(search_objectives(devices))
    floor = pareto_min_accuracy(config, ok, config_doc)
    for e in ok:
        # a network at chance level is no trade-off, however fast or small: it stays off the front
        if e.score.metrics["accuracy"] >= floor:
            archive.add(e.hash, e.score.metrics)
    best = {d: _best_of([e for e in ok if e.feasible_for.get(d)], d) for d in devices}
    best_overall = _best_of([e for e in ok if e.score.feasible])
    infeasible = {}
    for d in devices + ["all"]:
        if (best_overall if d == "all" else best[d]) is None:
            infeasible[d] = why_infeasible(config, ok, None if d == "all" else d, failed=len(evaluated) - len(ok))
    if not ok and evaluated:  # the one reason every device shares: say what the evaluations failed with
        infeasible = {d: f"{why}; {_commonest_error(evaluated)}" for d, why in infeasible.items()}
    return SearchResult(
        run_id=run_id,
        run_dir=run_dir,
        status="finished",
        stop_reason=stop_reason,
        seed_hash=seed_hash,
        devices=devices,
        evaluated=evaluated,
        pareto=[e.hash for e in evaluated if e.hash in archive],
        best=best,
        best_overall=best_overall,
        infeasible=infeasible,
        counters=replace(counters),
        elapsed_s=elapsed_s,
        config=dict(config_doc) if config_doc is not None else config.to_json(),
        warnings=list(warnings),
        budgets=[asdict(b) for b in config.budgets],
        strategy=config.strategy.name,
        evaluation_budget=config.evaluations,
        provenance=dict(provenance or {}),
        pareto_min_accuracy=floor,
        latency_scales={d: dict(v) for d, v in (latency_scales or {}).items()},
    )


#: the default Pareto floor, relative to what always answering the commonest class scores (1 / classes on
#: balanced data): a network less than 10% above it (e.g. 10.06% valid accuracy on 10 balanced classes, or 30%
#: where a third of the images are of one class) has learned nothing worth trading for speed or size
CHANCE_MARGIN = 1.1


def majority_floor(descriptor: DatasetDescriptor) -> float:
    """The default Pareto floor of a search on the dataset `descriptor` describes: 1.1 x the share of its
    commonest class (over all its samples), the accuracy of a network that answers that class for every input.
    A search stores it with the defaults it chose (`compat.resolved_defaults`)."""
    share = descriptor.samples_per_class_max / max(descriptor.samples, 1)
    return round(min(1.0, CHANCE_MARGIN * share), 6)


def pareto_min_accuracy(
    config: SearchConfig, evaluated: Sequence[Evaluated], config_doc: Mapping[str, Any] | None = None
) -> float:
    """The accuracy a network needs to enter the Pareto front: `search.pareto_min_accuracy`, or the one the run
    chose from its dataset (`majority_floor`, in `config_doc` as the run stored it), or without a dataset (a
    table evaluator's) 1.1 x the chance level of a balanced classifier, 1 / the network's output units (every
    candidate keeps the seed's output)."""
    given = config.search.pareto_min_accuracy
    if given is None and config_doc is not None:
        given = (config_doc.get("search") or {}).get("pareto_min_accuracy")
    if given is not None:
        return float(given)
    if not evaluated:
        return 0.0
    classes = int(evaluated[0].candidate.arch.output_shape[0])
    return CHANCE_MARGIN / classes if classes > 1 else 0.0


def _best_of(rows: list[Evaluated], device: str | None = None) -> str | None:
    """Highest accuracy; ties go to the higher reward, then the smaller model, then the earlier evaluated.
    One order for every device and for "all", with no measured figure in it: a measured latency is noisy,
    so ranking ties by it would let two exports of the same run (best/cpu, best/all) differ with the
    machine's load. `device` is kept for callers; the order does not depend on it."""
    if not rows:
        return None
    top = max(
        rows,
        key=lambda e: (e.score.metrics["accuracy"], e.score.reward, -e.score.metrics["model_size_bytes"], -e.seq),
    )
    return top.hash


#: what differs between two reports of one failure: a quoted name (a cell, a path, a layer) or a number
_ERROR_DETAILS = re.compile(r"'[^']*'|\"[^\"]*\"|\d+(?:\.\d+)?")


def _commonest_error(evaluated: Sequence[Evaluated]) -> str:
    """The error most failed evaluations share, and how many: what a user fixes first. Errors that differ
    only in a quoted name or a number ("cell '|a|' is not in the table", "cell '|b|' ...") are one error:
    counted together, and quoted by the first of them."""
    errors = [e.error for e in evaluated if e.error is not None]
    kinds = Counter(_ERROR_DETAILS.sub("…", error) for error in errors)
    kind, count = kinds.most_common(1)[0]
    first = next(error for error in errors if _ERROR_DETAILS.sub("…", error) == kind)
    alike = "" if errors.count(first) == count else " (or the same with other names or numbers)"
    return f"{count} of {len(evaluated)} failed with: {first}{alike}"


def why_infeasible(config: SearchConfig, ok: Sequence[Evaluated], device: str | None, failed: int = 0) -> str:
    """Why no successfully evaluated candidate meets the budgets of `device` (None: of every device);
    `failed`: how many evaluations failed besides."""
    where = f"device {device}" if device else "every device"
    budgets = [b for b in config.budgets if device is None or split_metric(b.metric)[1] in (None, device)]
    if not ok:
        return f"no candidate was evaluated successfully, so none is known to meet the budgets of {where}"

    # the candidate closest to feasible: smallest total relative overshoot
    def overshoot(e: Evaluated) -> float:
        return sum(b.excess(e.score.metrics[b.metric]) for b in budgets if b.metric in e.score.metrics)

    closest = min(ok, key=overshoot)
    parts = [
        f"{b.metric} {closest.score.metrics[b.metric]:.6g} > budget {b.limit:.6g}" + (f", {b.note}" if b.note else "")
        for b in budgets
        if b.metric in closest.score.metrics and closest.score.metrics[b.metric] > b.limit
    ]
    if not parts:  # no budget broken: infeasible for another reason (a measurement that failed), the rows say
        metrics = {b.metric for b in config.budgets}  # a budget's violation is its metric; others are free text
        reasons = [next(v for v in e.score.violations if v not in metrics) for e in ok
                   if any(v not in metrics for v in e.score.violations)]  # fmt: skip
        if reasons:
            return (
                f"no candidate of {len(ok)} evaluated{f' ({failed} more failed)' if failed else ''} is known to "
                f"meet the budgets of {where}; {len(reasons)} of them could not be judged, the first: {reasons[0]}"
            )
    capacity = any(
        is_capacity(b) and b.metric in closest.score.metrics and closest.score.metrics[b.metric] > b.limit
        for b in budgets
    )
    return (
        f"no candidate of {len(ok)} evaluated{f' ({failed} more failed)' if failed else ''} meets the budgets of "
        f"{where}; the closest ({closest.hash}) has "
        + "; ".join(parts)
        + ". Loosen the budget or start from a smaller seed network"
        + (f"; {CAPACITY_ADVICE}" if capacity else "")
    )
