"""The search loop: the same for every strategy, so comparisons are fair (see strategy.py).

    round 0: the seed network is evaluated (ground truth, unless `search.evaluate_seed = false`)
    each round, while evaluations < budget:
        candidates = strategy.ask(n)                         n = min(per_round, budget left)
        proposals that break a hard budget known before evaluation (model size; the metrics of a device
            whose time model runs nothing and itself decides feasibility, e.g. a table or analytic one)
            are dropped, and the strategy is asked again (up to SCREEN_ASKS times) to replace them
            (`search.screen_hard_budgets`, on by default): no evaluation is spent on a sure failure
        new ones (never evaluated) beyond n are ranked by predicted reward + κ·uncertainty (UCB) and the
            top n kept; predictions come from the predictors and each device's time model
        each is evaluated for real through the executor (evaluator → accuracy, training time) and, for a
            device with a `measure` time model, measured (latency...), each result stored at once
        the predictors are refit on all ground truth so far (the paper's joint training)
        strategy.tell(results); the final state (strategy, RNG, predictors) is stored once, at the end

The run stops when the budget is spent or when the strategy proposed nothing new for
`max_stalled_rounds` rounds in a row. `search.schedule = "async"` drops the round barrier (async_loop.py).
Determinism: everything random flows from `random_seed`, and every value measured is stored before it is
used; a resumed run replays from the start, served from the store, so it retraces the run and continues it.

The parts, as Optuna splits Study / Sampler / Storage: `build_components` (components.py) builds what the
config names; the `Scorer` (scorer.py) predicts scores; `GroundTruth` (ground_truth.py) pays for ground
truth and keeps it in the `RunStore` (store/); `SearchLoop` runs the rounds and reports to callbacks
(progress.py); `summarize` (summary.py) makes the result; `run_search` puts them together.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ComponentError, ConfigError, NAToolkitError, blame, resume_hint
from ..machine import blas_threads, fewer_collections
from ..moves import naming_move_plugins
from ..store.base import STORE_FILE
from ..store.faultpoint import kill_point
from ..store.lock import RunFolderGone, RunLock
from ..store.sqlite import SQLiteRunStore
from . import provenance
from .async_loop import run_async
from .compat import RESOLVED_ARTIFACT, config_differences, resolved_defaults, with_defaults
from .components import Components, build_components
from .config import SearchConfig, load_config
from .diagnostics import device_warnings, stalled_reason
from .ground_truth import GroundTruth
from .inputs import RunInputs, changed_since_copied, copy_inputs, plan_inputs, remove_inputs
from .progress import Callbacks, ProgressBar, RoundLog, SearchCallback, checked_callbacks
from .reward import Budget
from .run_folder import discard_folders, new_run_dir, resolve_run_dir, run_folder_callbacks
from .scorer import Scorer
from .strategy import Candidate, Score, Strategy
from .summary import Counters, Evaluated, SearchResult, summarize

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..moves import MoveType
    from ..predictors.neural import SharedEmbedding
    from ..store.base import RunStore
    from ..toolkit import Toolkit

__all__ = ["Counters", "Evaluated", "LoopContext", "SearchLoop", "SearchResult", "resolve_run_dir", "run_search"]

#: the store artifact listing a run's copies of the files its config names (copy → original path)
INPUTS_ARTIFACT = "inputs"
#: the store artifact of the executor's own figures (tasks, retries; a simulated fleet's clock and busy share)
EXECUTOR_ARTIFACT = "executor"
#: times a round asks the strategy again to replace proposals the hard-budget screen dropped
SCREEN_ASKS = 20


# ---- the context a strategy sees ---------------------------------------------------------------------
class LoopContext:
    """The `SearchContext` the loop offers a strategy: the seed, the moves, the RNG, cheap predicted
    scores and the ground truth so far."""

    def __init__(self, loop: SearchLoop):
        self._scorer = loop.scorer
        self._truth = loop.ground_truth
        self.seed_arch: Architecture = loop.components.seed_arch
        self.move_types: Sequence[MoveType] = loop.components.move_types
        self.rng: np.random.Generator = loop.rng
        self.config = loop.config
        self.objectives = loop.config.objectives
        self.budgets = loop.config.budgets
        self.devices = [d.name for d in loop.config.devices]
        self.counters = loop.counters

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        return self._scorer.score(archs)

    @property
    def evaluated(self) -> dict[str, tuple[Candidate, Score]]:
        return {h: (e.candidate, e.score) for h, e in self._truth.evaluated.items()}

    @property
    def random_seed(self) -> int:
        return self.config.random_seed

    def shared_embedding(self) -> SharedEmbedding | None:
        """The embedding the accuracy predictor lends the controller (joint training), else None."""
        return self._scorer.components.shared_embedding()


@dataclass
class _Proposals:
    """What one round's asks gave: every proposal in order, the new ones to evaluate, and the ones already
    evaluated (by position in `proposed`)."""

    proposed: list[Candidate] = field(default_factory=list)
    new: list[Candidate] = field(default_factory=list)
    known: dict[int, Evaluated] = field(default_factory=dict)
    screened: int = 0
    #: how many of the screened proposals broke each hard budget (one proposal may break several)
    screened_by: Counter[Budget] = field(default_factory=Counter)


# ---- the loop ------------------------------------------------------------------------------------------
class SearchLoop:
    """Runs the rounds of one search over built `components`, keeping its ground truth in `store` and
    reporting progress to `callbacks`. `run()` returns (stop reason, elapsed seconds); `summarize` makes the
    result from `ground_truth.history`."""

    def __init__(self, components: Components, store: RunStore, callbacks: Sequence[SearchCallback] = ()):
        self.components = components
        self.config: SearchConfig = components.config
        self.store = store
        self.callbacks = Callbacks(callbacks)
        self.counters = Counters()
        #: what the user should know (the seed breaks a budget); the ground truth adds its own
        self.warnings: list[str] = []
        self.rng = np.random.default_rng(self.config.random_seed)
        self.ground_truth = GroundTruth(components, store, self.counters)
        self.scorer = Scorer(components, self.counters, self.ground_truth)
        self.context = LoopContext(self)
        self.strategy: Strategy = components.new_strategy(self.context)

    @property
    def seed_arch(self) -> Architecture:
        return self.components.seed_arch

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        """Predicted scores (what strategies get from `context.score`)."""
        return self.scorer.score(archs)

    def _evaluate(self, cands: Sequence[Candidate], round: int) -> list[Evaluated]:
        """Ground truth for `cands`, then the predictors refit on all of it."""
        kill_point("evaluate")  # the fault benchmark's kills (store/faultpoint.py); nothing without its variable
        results = self.ground_truth.evaluate(cands, round, self.scorer, on_result=self.callbacks.on_evaluation)
        self.ground_truth.refit(self.scorer)  # first: it records what was predicted for them
        self.callbacks.on_evaluated(self.ground_truth.history)
        return results

    def _checkpoint(self, round: int) -> None:
        kill_point("checkpoint")
        self.ground_truth.last_checkpoint = round  # nothing written: the final state is, at the end
        self.callbacks.on_round_end(round)

    def _ask(self, n: int) -> list[Candidate]:
        """The strategy's proposals; a ComponentError naming it and its plugin when it fails or proposes others."""
        name = self.config.strategy.name
        what, plugin = f"strategy {name!r}", self.components.toolkit.strategies.plugin_of(name)
        with blame(what, plugin, f"to propose {n} candidate(s)"), naming_move_plugins(self.components.toolkit.moves):
            batch = list(self.strategy.ask(n))  # a strategy may hand out any iterable
        wrong = sorted({type(c).__name__ for c in batch if not isinstance(c, Candidate)})
        if wrong:
            fix = "wrap each network as Candidate(arch, moves, parent, origin) (na_toolkit.search.strategy)"
            raise ComponentError(f"{what} of plugin {plugin} proposed {', '.join(wrong)}, not Candidate objects: {fix}")
        return batch

    def _propose(self, n: int, pending: Container[str] = ()) -> _Proposals:
        """Ask the strategy for `n` candidates; proposals the hard-budget screen drops are replaced by asking
        again, while short of n. A strategy proposing exactly n gets its first n new ones, in order; one
        proposing more has the new ones ranked by UCB on their predicted scores. Proposals `pending`
        (in flight, async schedule) are dropped as duplicates."""
        evaluated = self.ground_truth.evaluated
        out = _Proposals()
        seen: set[str] = set()
        many = False  # did one ask return more than n (the loop then ranks them)?
        for _ in range(1 + (SCREEN_ASKS if self.scorer.screened_budgets else 0)):
            batch = self._ask(n)
            self.counters.strategy_asks += 1
            self.counters.proposed += len(batch)
            many = many or len(batch) > n
            dropped = 0
            for c in batch:
                i = len(out.proposed)
                out.proposed.append(c)
                if c.hash in evaluated:
                    out.known[i] = evaluated[c.hash]
                    self.counters.duplicates += 1
                elif c.hash in pending:
                    self.counters.duplicates += 1
                elif c.hash not in seen:
                    seen.add(c.hash)
                    broken = self.scorer.breaks_screened_budget(c.arch)
                    if broken:
                        dropped += 1
                        out.screened_by.update(broken)
                    else:
                        out.new.append(c)
            self.counters.screened += dropped
            out.screened += dropped
            # ask again only to replace what the screen dropped, while short of n
            if len(out.new) >= n or not dropped or not batch:
                break
        if not many:
            out.new = out.new[:n]  # a strategy proposing exactly n gets its first n feasible ones, in order
        if len(out.new) > n:
            scores = self.scorer.score([c.arch for c in out.new])
            ucb = [s.reward + self.config.search.ucb_kappa * s.uncertainty for s in scores]
            keep = sorted(range(len(out.new)), key=lambda i: -ucb[i])[:n]  # stable: ties keep proposal order
            out.new = [out.new[i] for i in sorted(keep)]
        return out

    def run(self) -> tuple[str, float]:
        """Run (or replay and continue) the search; returns (stop reason, elapsed seconds)."""
        started = time.perf_counter()
        cfg = self.config
        budget = cfg.evaluations
        self.callbacks.on_start(budget)
        try:
            # the seed already breaking a budget by the time models: told in the result (`result`)
            self.scorer.budget_warnings(self.seed_arch)
            for message in device_warnings(self.components):
                self.warnings.append(message)
                # on stderr now (the na_toolkit logger: `-q` hides it), and in summary.json and report.md at
                # the end: never only in a measurement
                logging.getLogger("na_toolkit.search").warning(f"warning: {message}")
            round_ = 0
            if cfg.search.evaluate_seed:
                results = self._evaluate([Candidate(self.seed_arch, (), None, "seed")], round_)
                self.strategy.tell([(e.candidate, e.score) for e in results])
                self._checkpoint(round_)
            stalled = 0
            screened_total = 0  # dropped by the screen since the last round that evaluated something
            screened_by: Counter[Budget] = Counter()  # ... by the budget they broke
            reason = f"the evaluation budget ({budget}) is spent"
            if cfg.search.schedule == "async":
                reason = run_async(self)
                self.ground_truth.save_final_state(self.strategy, self.rng, self.scorer.predictors)
                return reason, time.perf_counter() - started
            while self.counters.evaluations < budget:
                round_ += 1
                self.counters.rounds = round_
                p = self._propose(min(cfg.search.per_round, budget - self.counters.evaluations))
                screened_total += p.screened
                screened_by.update(p.screened_by)
                if not p.new:
                    stalled += 1
                    if p.known:
                        self.strategy.tell([(p.proposed[i], e.score) for i, e in p.known.items()])
                    if stalled >= cfg.search.max_stalled_rounds:
                        reason = self._stalled_reason(stalled, screened_total, screened_by)
                        break
                    continue
                stalled = 0
                screened_total = 0
                screened_by.clear()
                fresh = {c.hash: e for c, e in zip(p.new, self._evaluate(p.new, round_))}
                told: list[tuple[Candidate, Score]] = []
                for i, c in enumerate(p.proposed):  # in proposal order; a candidate proposed twice is told once
                    if i in p.known:
                        told.append((c, p.known[i].score))
                    elif c.hash in fresh:
                        told.append((c, fresh.pop(c.hash).score))
                self.strategy.tell(told)
                self._checkpoint(round_)
            self.ground_truth.save_final_state(self.strategy, self.rng, self.scorer.predictors)
        finally:
            self.store.save_artifact(EXECUTOR_ARTIFACT, self.components.executor.stats_document())
            provenance.record_session_time(self.store, time.perf_counter() - started)
            self.callbacks.on_end()
            self.components.close()
        return reason, time.perf_counter() - started

    def _stalled_reason(self, stalled: int, screened: int, screened_by: Mapping[Budget, int] | None = None) -> str:
        return stalled_reason(
            stalled, self.counters.evaluations, self.config.evaluations, screened, screened_by,
            self.scorer.screened_budgets, sum(e.score.feasible for e in self.ground_truth.history),
        )  # fmt: skip

    def result(self, run_dir: Path, reason: str, elapsed_s: float) -> SearchResult:
        """The result of the finished run (see `summarize`)."""
        return summarize(
            self.config,
            self.ground_truth.history,
            run_id=self.store.run_id,
            run_dir=run_dir,
            stop_reason=reason,
            seed_hash=self.seed_arch.hash,
            counters=self.counters,
            elapsed_s=provenance.run_elapsed_s(self.store, elapsed_s),
            warnings=self.scorer.run_warnings(self.ground_truth.history, self.warnings + self.ground_truth.warnings),
            provenance=provenance.stored_provenance(self.store),
            config_doc=with_defaults(self.config.to_json(), self.store.artifact(RESOLVED_ARTIFACT) or {}),
            latency_scales={d: scale.to_json() for d, scale in self.scorer.scales.items()},
        )


# ---- the library API ---------------------------------------------------------------------------------
def _discard_store(store: SQLiteRunStore) -> None:
    """Remove a store made for a run that then failed to build: the run never started."""
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.path}{suffix}").unlink(missing_ok=True)


def _open_resumed(
    resume: str | Path, config: Any, overrides: Mapping[str, Any] | None, toolkit: Toolkit
) -> tuple[SearchConfig, Path, SQLiteRunStore, RunLock]:
    """The config, folder, store and lock of the run to resume (a StoreError naming the holder when another
    search writes it); a ConfigError when `config` (if given) is not the config the run was started with."""
    out_dir = load_config(config, overrides=overrides, toolkit=toolkit).output if config is not None else None
    folder = resolve_run_dir(resume, out_dir)
    lock = RunLock(folder).acquire()  # before the store is touched: a live run is never stamped or replayed
    try:
        store = SQLiteRunStore.open(folder)
    except BaseException:
        lock.release()
        raise
    try:
        stored = store.run().config
        # before the config is resolved against this toolkit: a plugin the run used and this process lacks
        # is named with its version, not reported as an unknown layer type or move
        provenance.check_plugins(provenance.recorded_provenance(store), toolkit, f"resuming run {store.run_id}")
        # the run's copies of its named files are read from its folder (search/inputs.py), not from where
        # the config first named them; the document stays as stored (paths relative to the run folder)
        cfg = replace(load_config(stored, toolkit=toolkit, base_dir=folder), doc=copy.deepcopy(stored))
        if config is not None:
            given_cfg = load_config(config, overrides=overrides, toolkit=toolkit)
            copied = store.artifact(INPUTS_ARTIFACT) is not None  # runs made before the copies compare as given
            plan = plan_inputs(given_cfg) if copied else None
            given = plan.doc if plan is not None else given_cfg.to_json()
            given = with_defaults(given, store.artifact(RESOLVED_ARTIFACT) or {})  # as the run's start filled them
            diff = [k for k in config_differences(stored, given) if k != "output"]
            diff += changed_since_copied(plan, folder) if plan is not None else []  # the same path, new content
            if diff:
                raise ConfigError(
                    f"run {store.run_id} was started with a different config ({', '.join(diff)} differ): "
                    f"resume it without a config, or start a new run"
                )
    except BaseException:
        store.close()
        lock.release()
        raise
    return cfg, folder, store, lock


def run_search(
    config: Any = None,
    resume: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    outputs: bool = True,
    toolkit: Toolkit | None = None,
    store: RunStore | None = None,
    callbacks: Sequence[SearchCallback] = (),
) -> SearchResult:
    """Run a search from a config (TOML path, dict or SearchConfig) and return its result; the same options
    as `na-toolkit search`. `resume=RUN` (a run folder) continues a killed run: it replays the run from the
    start, serving every stored evaluation and measurement, so nothing is evaluated twice and the result
    equals an uninterrupted run; it reads the copies of the config's files the run folder got (inputs.py)
    and a finished run keeps its result until the resume has a newer one. `overrides` replace top-level
    config keys (evaluations, output, random_seed); `run_dir` fixes the run folder (default: a new
    `<output>/<name>-<time>` folder). `store` runs the search in a store the caller made and keeps open
    (e.g. a `MemoryRunStore`: no run folder is made unless `outputs` writes one); `callbacks` observe the
    progress (`progress=True` adds a tqdm bar).

    This is an entry point: without `toolkit` it uses the process's default toolkit (every installed
    plugin), and passes the toolkit down explicitly from here."""
    from ..plugins import toolkit_or_default

    toolkit, callbacks = toolkit_or_default(toolkit, "run_search"), checked_callbacks(callbacks)
    own_store = store is None
    reserved: list[Path] = []  # folders made for a new run (new_run_dir's, the output's), removed if it never starts
    lock: RunLock | None = None  # one writer per run folder
    was_finished = False  # resuming a run that already has its complete result
    inputs: RunInputs | None = None  # the named files a new run folder gets copies of
    if resume is not None:
        if store is not None:
            raise ConfigError("run_search: give resume=RUN (a run folder) or store=..., not both")
        if overrides and config is None:  # they would be ignored: the run replays its stored config
            raise ConfigError(
                f"run_search: overrides {sorted(overrides)} change a run, and a resumed run keeps its own config; "
                "resume without overrides, or start a new run with them"
            )
        cfg, folder, store, lock = _open_resumed(resume, config, overrides, toolkit)
        # A finished run keeps its status and result while it is resumed (whatever stops the resume: a
        # failure, a kill): they are replaced only by the newer complete result, so it stays reportable.
        was_finished = store.run().status == "finished"
    else:
        if config is None:
            raise ConfigError("run_search needs a config (a TOML path, a dict or a SearchConfig) or resume=RUN")
        cfg = load_config(config, overrides=overrides, toolkit=toolkit)
        if run_dir is not None:
            folder = Path(run_dir)
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"run_dir: {str(folder)!r} is a file; give the folder for the run (new or empty)")
        elif store is not None:
            folder = cfg.output / store.run_id
        else:
            made_output = not cfg.output.exists()
            folder = new_run_dir(cfg.output, cfg.name)[1]
            reserved = [folder, *([cfg.output] if made_output else [])]
        if store is None:  # a run folder: its named files are copied into it and its config refers to those
            inputs = plan_inputs(cfg)
            cfg = inputs.config(cfg, folder)
    components: Components | None = None
    loop: SearchLoop | None = None
    copied = False  # the config's named files were copied into the run folder
    try:
        components = build_components(cfg, toolkit)
        if store is None:  # the run is created only once every component built cleanly from the config
            assert inputs is not None
            folder.mkdir(parents=True, exist_ok=True)
            lock = RunLock(folder).acquire()
            resolved = resolved_defaults(components)  # defaults that affect results, kept by a resume (compat.py)
            new_store = SQLiteRunStore.create(folder / STORE_FILE, folder.name, with_defaults(cfg.to_json(), resolved))
            try:
                copied = True
                copy_inputs(inputs, folder)
                new_store.save_artifact(INPUTS_ARTIFACT, {"files": inputs.files})
                new_store.save_artifact(RESOLVED_ARTIFACT, resolved)
                loop = SearchLoop(components, new_store, _callbacks(progress, callbacks, lock, new_store))
            except BaseException:
                _discard_store(new_store)  # the strategy refused its options: the run never started
                raise
            store = new_store
        else:
            loop = SearchLoop(components, store, _callbacks(progress, callbacks, lock, store))
            if resume is not None and not was_finished:
                store.set_status("running")
        loop.warnings += provenance.record_provenance(store, components, "resume" if resume is not None else "start")
        with blas_threads(cfg.search.driver_blas_threads), fewer_collections():
            reason, elapsed = loop.run()
        result = loop.result(folder, reason, elapsed)
        if outputs:
            from .outputs import write_outputs

            kill_point("outputs")
            if lock is not None:  # moved or deleted after its last evaluation: not into a new folder at the old path
                lock.check_in_place()
            write_outputs(result, store, toolkit.layer_types)
        kill_point("finish")
        store.set_status("finished", result.summary())
        return result
    except BaseException as exc:
        if loop is None and components is not None:
            components.close()  # the loop closes them when it ran
        if store is None and copied and inputs is not None:
            remove_inputs(inputs, folder)  # the run never started: leave the folder as it was found
        if store is None and lock is not None:
            lock.release(remove=True)
            lock = None
        if store is None:
            discard_folders(reserved)  # nothing was stored in them
        if store is not None and not was_finished:
            try:
                if not isinstance(exc, KeyboardInterrupt):  # what ended it, for `runs` and `report`
                    from .outputs import FAILURE_ARTIFACT

                    store.save_artifact(FAILURE_ARTIFACT, {"error": f"{type(exc).__name__}: {exc}"})
                store.set_status("running" if isinstance(exc, KeyboardInterrupt) else "failed")
            except NAToolkitError:
                pass
            if own_store and not isinstance(exc, RunFolderGone):  # how to go on, pasted into a shell as it is
                kept = store.count_evaluations()
                logging.getLogger("na_toolkit.search").warning(
                    "the run keeps its %d evaluation%s; continue it with %s",
                    kept,
                    "s" * (kept != 1),
                    resume_hint(folder),
                )
        raise
    finally:
        if store is not None and own_store:
            store.close()
        if lock is not None:
            lock.release()


def _callbacks(
    progress: bool, callbacks: Sequence[SearchCallback], lock: RunLock | None, store: RunStore
) -> list[SearchCallback]:
    # its folder's own
    folder = run_folder_callbacks(lock, store) if lock is not None else []
    return folder + ([ProgressBar()] if progress else []) + [RoundLog()] + list(callbacks)
