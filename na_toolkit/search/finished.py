"""A run read back from its folder: `open_run(run) -> SearchResult`, the object `run_search` returned; with
`unfinished=True`, a run that did not finish too (a live search's, an interrupted or failed one's), as far as
it got.

    from na_toolkit.search import open_run
    result = open_run("runs/digits-cpu-20250101-120000")
    result.best["cpu"], result.pareto, result.counters, result.rows(), result.get(h).candidate.arch
    so_far = open_run("runs/digits-cpu-20250101-120000", unfinished=True)   # a search still running
    so_far.status, so_far.best["cpu"], so_far.rows()

Everything comes from the run's folder, read-only (never written: a run in a read-only folder opens,
and a search writing the store at the same time is not disturbed: SQLite's WAL lets a reader read the last
commit beside a writer). A finished run's stored summary gives what the search found; each evaluation's
architecture and its evaluator's result come from the evaluations the store holds. What the summary does not
hold is derived exactly from what it does: a score's `hard_violations` are the budget metrics it breaks whose
budget is hard (the summary's `budgets` hold every budget the search scored with, the memory capacities it
added itself included). `Score.uncertainty` is 0.0 and `Score.real` True, as for every ground-truth score.

A run that did not finish has no summary yet: its evaluations so far are scored as the search scored them,
the rows it keeps in `evaluations.jsonl` (rewritten after each batch), and `summarize`, the code that makes a
finished run's summary, ranks them: `best` per device and `best_overall` by the same order, `pareto` the
front of those evaluations (the same archive and accuracy floor), `infeasible` why none meets a device's
budgets yet. The result's `status` is "running" (a live search writes it), "interrupted" or "failed", its
`stop_reason` says which and how to continue it. What only the search's process knows until it ends is left
out: evaluations stored but not yet in `evaluations.jsonl` (the batch being scored, or a killed run's last
one) are named in `warnings`, not ranked; `counters` hold what the store counts (evaluations and failed ones
paid for, measurements, rounds; the rest 0); `budgets` and `hard_violations` are the config's (the memory
capacity budgets a search adds itself come with its summary); `elapsed_s` runs from the run's start to its
last write; `seed_hash` is "" until the seed's evaluation is scored; `controller` is None.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, resume_hint
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


def open_run(run: str | Path, *, unfinished: bool = False, toolkit: Toolkit | None = None) -> SearchResult:
    """The `SearchResult` of the finished run in folder `run`, as `run_search` returned it (`best`, `pareto`,
    `counters`, `rows()`, `get(hash)`, `summary()`, `provenance`, `config`); its `run_dir` is the folder it
    was opened from (a moved run folder is where it is now). Read-only: the run is never written.

    A StoreError when `run` is no run folder, when the run did not finish (a live search still writes it, or
    it was interrupted: the message says how to continue it, and `evaluations.jsonl` in its folder holds the
    evaluations so far) and `unfinished` is not asked for, or when its store is damaged or of a newer
    toolkit's schema; a ConfigError when a plugin that provided a component of the run is not installed.
    `unfinished=True`: a run that did not finish opens too, as what it holds so far (status "running",
    "interrupted" or "failed"; the module docstring says what it holds); a finished one opens as without it.
    `toolkit` rebuilds the architectures (its layer types; default: the process's toolkit, every installed
    plugin)."""
    from ..plugins import toolkit_or_default
    from .outputs import load_summary
    from .provenance import check_plugins, recorded_provenance

    toolkit = toolkit_or_default(toolkit, "open_run")
    store, summary = open_store(run, finished=not unfinished)
    with store:
        check_plugins(recorded_provenance(store), toolkit, f"opening run {store.run_id}")
        if summary is None and store.run().status == "finished":
            summary = load_summary(store)
        if summary is None:
            so_far, _records = result_so_far(store, toolkit)
            if so_far.status != "interrupted" or store.run().status != "finished":
                return so_far
            summary = load_summary(store)  # it finished (and let go of its lock) while it was read: its result
        records = {r.arch_hash: r for r in store.evaluations()}
        return result_from_summary(summary, records, Path(store.path).parent, toolkit)


def result_so_far(store: SQLiteRunStore, toolkit: Toolkit) -> tuple[SearchResult, list[EvaluationRecord]]:
    """What the run in `store`, which did not finish, holds so far (see the module docstring): its scored
    evaluations ranked by `summarize`; and every evaluation the store held as it was read (scored or not),
    which `na-toolkit runs` also looks through, so a listing reads them once."""
    from .compat import RESOLVED_ARTIFACT, with_defaults
    from .config import load_config
    from .evaluations_file import JSONL_FILE, scored_so_far
    from .provenance import stored_provenance
    from .summary import summarize

    folder = Path(store.path).parent
    run = store.run()
    # the rows before the store's evaluations: each row's evaluation was stored before the search scored it,
    # so the evaluations read after hold every row's, however far a live search got in between
    entries = scored_so_far(folder) or []
    records = store.evaluations()
    by_hash = {r.arch_hash: r for r in records}
    config_doc = with_defaults(run.config, store.artifact(RESOLVED_ARTIFACT) or {})
    config = load_config(config_doc, base_dir=folder)  # the document alone: no component is built
    hard = [(b.metric, b.limit) for b in config.budgets if b.hard]
    evaluated = [_evaluated(e, by_hash, hard, toolkit, run.run_id, JSONL_FILE) for e in entries]
    status, reason = _unfinished_state(store, run.status, folder)
    scored = {e.hash for e in evaluated}
    pending = [r.arch_hash for r in records if r.arch_hash not in scored]
    warnings = []
    if pending:
        warnings.append(
            f"{len(pending)} of the {len(records)} evaluations stored are not in {JSONL_FILE} yet, so not here "
            f"({', '.join(h[:12] for h in pending[:3])}{', ...' if len(pending) > 3 else ''}): the search scores and "
            "writes them after their round (a few fast rounds at a time; a resumed run, after its first new one)"
        )
    counters = Counters(
        evaluations=len(records),
        failed_evaluations=sum(r.error is not None for r in records),
        measurements=store.count_measurements(),
        rounds=max((r.round for r in records), default=0),
    )
    seed = next((e.hash for e in evaluated if e.candidate.origin == "seed"), "")
    result = summarize(
        config,
        evaluated,
        run_id=run.run_id,
        run_dir=folder,
        stop_reason=reason,
        seed_hash=seed,
        counters=counters,
        elapsed_s=max(0.0, run.updated_s - run.created_s),
        warnings=warnings,
        provenance=stored_provenance(store),
        config_doc=config_doc,
    )
    return replace(result, status=status), records


def _unfinished_state(store: SQLiteRunStore, status: str, folder: Path) -> tuple[str, str]:
    """(status, stop reason) of a run that did not finish: running (a live search holds it), interrupted, or
    failed (with what ended it, where the run recorded it)."""
    from ..store.lock import live_holder
    from .outputs import failure_of

    resume = f"continue it with {resume_hint(folder)}"
    if status == "failed":
        failure = failure_of(store)
        return "failed", f"failed ({failure or 'the run recorded no reason'}); {resume}"
    writer = live_holder(folder)
    if writer is not None:
        return "running", f"not finished: a live search writes it ({writer})"
    return "interrupted", f"interrupted (it stopped without finishing); {resume}"


def result_from_summary(
    summary: dict[str, Any], records: dict[str, EvaluationRecord], run_dir: Path, toolkit: Toolkit
) -> SearchResult:
    """The SearchResult a stored summary describes, with the architectures and evaluator results of the run's
    stored evaluations (`records`, by hash)."""
    hard = [(b["metric"], float(b["limit"])) for b in summary["budgets"] if b.get("hard")]
    evaluated = [_evaluated(e, records, hard, toolkit, summary["run_id"], "summary") for e in summary["evaluated"]]

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
        latency_scales=dict(summary.get("latency_scales") or {}),  # absent from a summary of an older run
    )


def _evaluated(
    entry: dict[str, Any],
    records: dict[str, EvaluationRecord],
    hard: list[tuple[str, float]],
    toolkit: Toolkit,
    run_id: str,
    source: str,
) -> Evaluated:
    """The `Evaluated` of `entry` (as `Evaluated.to_json` gave it, in the run's `source`: its summary or its
    evaluations file) with its architecture and evaluator's result from the store's `records`."""
    from ..ir.architecture import Architecture
    from ..moves import Move

    arch_hash = entry["arch_hash"]
    rec = records.get(arch_hash)
    if rec is None:
        raise StoreError(
            f"run {run_id}: its {source} names network {arch_hash} but its store holds no evaluation of it; the "
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
