"""A finished run read back from its folder: `open_run(run) -> SearchResult`, the object `run_search` returned.

    from na_toolkit.search import open_run
    result = open_run("runs/digits-cpu-20250101-120000")
    result.best["cpu"], result.pareto, result.counters, result.rows(), result.get(h).candidate.arch

Everything comes from the run's store, opened read-only (never written: a run in a read-only folder opens,
and a search writing the store at the same time is not disturbed: SQLite's WAL lets a reader read the last
commit beside a writer). The run's stored summary gives what the search found; each evaluation's
architecture and its evaluator's result come from the evaluations the store holds. What the summary does not
hold is derived exactly from what it does: a score's `hard_violations` are the budget metrics it breaks whose
budget is hard (the summary's `budgets` hold every budget the search scored with, the memory capacities it
added itself included). `Score.uncertainty` is 0.0 and `Score.real` True, as for every ground-truth score.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .strategy import Candidate, Score
from .summary import Counters, Evaluated, SearchResult

if TYPE_CHECKING:  # pragma: no cover
    from ..store.base import EvaluationRecord
    from ..store.sqlite import SQLiteRunStore
    from ..toolkit import Toolkit


def open_store(
    run: str | Path, runs_folder: Path | None = None, *, finished: bool = True
) -> tuple[SQLiteRunStore, dict[str, Any] | None]:
    """The run's store, opened read-only, and (when `finished` is asked for) its stored summary: a StoreError
    for a run that did not finish (saying whether a live search writes it, or how to continue it), for a
    folder that holds no run, and for a store of a newer schema. `run`: a run folder, its store file, or a
    run id inside `runs_folder`. Without `finished`, an interrupted or live run opens too (summary None)."""
    from ..store import SQLiteRunStore
    from .outputs import load_summary
    from .run_folder import resolve_run_dir

    store = SQLiteRunStore.open(resolve_run_dir(run, runs_folder), readonly=True)  # a reader: never writes it
    try:
        return store, load_summary(store) if finished else None
    except BaseException:
        store.close()
        raise


def open_run(run: str | Path, *, toolkit: Toolkit | None = None) -> SearchResult:
    """The `SearchResult` of the finished run in folder `run`, as `run_search` returned it (`best`, `pareto`,
    `counters`, `rows()`, `get(hash)`, `summary()`, `provenance`, `config`); its `run_dir` is the folder it
    was opened from (a moved run folder is where it is now). Read-only: the run is never written.

    A StoreError when `run` is no run folder, when the run did not finish (a live search still writes it, or
    it was interrupted: the message says how to continue it, and `evaluations.jsonl` in its folder holds the
    evaluations so far), or when its store is damaged or of a newer toolkit's schema; a ConfigError when a
    plugin that provided a component of the run is not installed. `toolkit` rebuilds the architectures (its
    layer types; default: the process's toolkit, every installed plugin)."""
    from .provenance import check_plugins, recorded_provenance

    if toolkit is None:
        from ..plugins import get_toolkit

        toolkit = get_toolkit()
    store, summary = open_store(run)
    assert summary is not None  # finished=True: a summary or a StoreError
    with store:
        check_plugins(recorded_provenance(store), toolkit, f"opening run {store.run_id}")
        records = {r.arch_hash: r for r in store.evaluations()}
        return result_from_summary(summary, records, Path(store.path).parent, toolkit)


def result_from_summary(
    summary: dict[str, Any], records: dict[str, EvaluationRecord], run_dir: Path, toolkit: Toolkit
) -> SearchResult:
    """The SearchResult a stored summary describes, with the architectures and evaluator results of the run's
    stored evaluations (`records`, by hash)."""
    hard = [(b["metric"], float(b["limit"])) for b in summary["budgets"] if b.get("hard")]
    evaluated = [_evaluated(e, records, hard, toolkit, summary["run_id"]) for e in summary["evaluated"]]

    def hash_of(entry: dict[str, Any] | None) -> str | None:
        return None if entry is None else str(entry["arch_hash"])

    known = {f.name for f in fields(Counters)}  # a newer toolkit's counter is left out, an older run's is 0
    return SearchResult(
        run_id=summary["run_id"],
        run_dir=run_dir,
        status=summary["status"],
        stop_reason=summary["stop_reason"],
        seed_hash=summary["seed_hash"],
        devices=list(summary["devices"]),
        evaluated=evaluated,
        pareto=[str(p["arch_hash"]) for p in summary["pareto"]],
        best={d: hash_of(entry) for d, entry in summary["best"].items()},
        best_overall=hash_of(summary["best_overall"]),
        infeasible=dict(summary["infeasible"]),
        counters=Counters(**{k: v for k, v in summary["counters"].items() if k in known}),
        elapsed_s=float(summary["elapsed_s"]),
        config=summary["config"],
        warnings=list(summary["warnings"]),
        outputs=dict(summary.get("outputs") or {}),
        budgets=list(summary["budgets"]),
        strategy=summary["strategy"],
        evaluation_budget=summary["evaluation_budget"],
        provenance=dict(summary.get("provenance") or {}),
        controller=summary.get("controller"),
        pareto_min_accuracy=float(summary.get("pareto_min_accuracy", 0.0)),
    )


def _evaluated(
    entry: dict[str, Any],
    records: dict[str, EvaluationRecord],
    hard: list[tuple[str, float]],
    toolkit: Toolkit,
    run_id: str,
) -> Evaluated:
    from ..ir.architecture import Architecture
    from ..moves import Move

    arch_hash = entry["arch_hash"]
    rec = records.get(arch_hash)
    if rec is None:
        raise StoreError(
            f"run {run_id}: its summary names network {arch_hash} but its store holds no evaluation of it; the "
            "store is damaged"
        )
    metrics = dict(entry["metrics"])
    violations = tuple(entry["violations"])
    # compute_reward's hard_violations: in budget order, each metric once, only what the score names as broken
    # (a failed evaluation's violations are its reason, no metric)
    broken: list[str] = []
    for metric, limit in hard:
        if metric in violations and metric not in broken and float(metrics.get(metric, -float("inf"))) > limit:
            broken.append(metric)
    candidate = Candidate(
        Architecture.from_json(rec.arch_json, toolkit.layer_types),
        tuple(Move(m["operation"], dict(m["params"])) for m in entry["moves"]),
        entry["parent"],
        entry["origin"],
    )
    score = Score(float(entry["reward"]), metrics, bool(entry["feasible"]), 0.0, True, violations, tuple(broken))
    return Evaluated(
        seq=int(entry["seq"]),
        round=int(entry["round"]),
        candidate=candidate,
        score=score,
        result=dict(rec.result),
        error=entry["error"],
        feasible_for=dict(entry["feasible_for"]),
        predicted_accuracy=entry["predicted_accuracy"],
    )
