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
        strategy.tell(results); checkpoints (strategy, predictors, RNG) are stored

The run stops when the budget is spent or when the strategy proposed nothing new for
`max_stalled_rounds` rounds in a row. A candidate's reward, feasibility and budget violations come from
`compute_reward` on its metrics. Determinism: everything random flows from `random_seed`, and every value
measured (evaluations, measurements) is stored before it is used; a resumed run replays from the start,
served from the store, and so retraces the interrupted run exactly and continues it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, NAToolkitError, StoreError, TimeModelError
from ..ir.architecture import Architecture
from ..moves import Move
from ..store.sqlite import STORE_FILE, EvaluationRecord, RunStore
from .config import DeviceSpec, SearchConfig, build_seed, load_config
from .executors import Executor, Task, TaskResult, make_executor
from .pareto import ParetoArchive, search_objectives
from .reward import Budget, compute_reward, device_metric, split_metric
from .strategy import Candidate, Score, Strategy

#: metrics a time model's estimate gives, by TimeEstimate field
ESTIMATE_METRICS = ("latency_ms", "peak_memory_bytes", "energy_mj")
#: times a round asks the strategy again to replace proposals the hard-budget screen dropped
SCREEN_ASKS = 20


@dataclass
class Counters:
    """What the search paid for and what it computed, counted separately."""

    #: ground-truth evaluations (the budget), failed ones included
    evaluations: int = 0
    #: of those, served from the run store (a resumed run replaying its past)
    evaluations_replayed: int = 0
    failed_evaluations: int = 0
    #: ground-truth measurements by a device's `measure` time model
    measurements: int = 0
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

    @property
    def hash(self) -> str:
        return self.candidate.hash

    def to_json(self, with_arch: bool = False) -> dict[str, Any]:
        out = {
            "seq": self.seq, "round": self.round, "arch_hash": self.hash, "name": self.candidate.arch.name,
            "origin": self.candidate.origin, "parent": self.candidate.parent,
            "moves": [m.to_json() for m in self.candidate.moves], "reward": self.score.reward,
            "feasible": self.score.feasible, "feasible_for": dict(self.feasible_for),
            "violations": list(self.score.violations), "metrics": dict(self.score.metrics), "error": self.error,
        }
        if with_arch:
            out["arch"] = self.candidate.arch.to_json()
        return out


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

    def get(self, arch_hash: str) -> Evaluated:
        for e in self.evaluated:
            if e.hash == arch_hash:
                return e
        raise KeyError(arch_hash)

    def summary(self) -> dict[str, Any]:
        def entry(h: str | None) -> dict[str, Any] | None:
            return None if h is None else self.get(h).to_json()

        return {
            "run_id": self.run_id, "run_dir": str(self.run_dir), "status": self.status,
            "stop_reason": self.stop_reason, "seed_hash": self.seed_hash, "devices": self.devices,
            "best": {d: entry(h) for d, h in self.best.items()}, "best_overall": entry(self.best_overall),
            "infeasible": dict(self.infeasible), "pareto": [entry(h) for h in self.pareto],
            "evaluated": [e.to_json() for e in self.evaluated], "counters": asdict(self.counters),
            "elapsed_s": self.elapsed_s, "warnings": list(self.warnings), "outputs": dict(self.outputs),
            "budgets": list(self.budgets), "strategy": self.strategy, "evaluation_budget": self.evaluation_budget,
            "config": self.config,
        }


# ---- the context a strategy sees ---------------------------------------------------------------------
class LoopContext:
    """The `SearchContext` the loop offers a strategy: the seed, the moves, the RNG, cheap predicted
    scores and the ground truth so far."""

    def __init__(self, loop: SearchLoop):
        self._loop = loop
        self.seed_arch: Architecture = loop.seed_arch
        self.operations = loop.operations
        self.rng: np.random.Generator = loop.rng
        self.config = loop.config
        self.objectives = loop.config.objectives
        self.budgets = loop.config.budgets
        self.devices = [d.name for d in loop.config.devices]
        self.counters = loop.counters

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        return self._loop.score(archs)

    @property
    def evaluated(self) -> dict[str, tuple[Candidate, Score]]:
        return {h: (e.candidate, e.score) for h, e in self._loop.evaluated.items()}

    @property
    def random_seed(self) -> int:
        return self._loop.config.random_seed


# ---- the loop ------------------------------------------------------------------------------------------
class SearchLoop:
    def __init__(self, config: SearchConfig, store: RunStore | None, run_dir: Path, toolkit: Any = None, progress: bool = True):
        if toolkit is None:
            from ..plugins import get_toolkit

            toolkit = get_toolkit()
        self.tk = toolkit
        self.config = config
        self.store = store
        self.run_dir = run_dir
        self.progress = progress
        self.counters = Counters()
        self.warnings: list[str] = []
        self.rng = np.random.default_rng(config.random_seed)
        self.evaluated: dict[str, Evaluated] = {}
        self._order: list[str] = []
        self._estimates: dict[tuple[str, str, str], dict[str, float]] = {}
        self._bar = None
        self.seed_arch = build_seed(config.seed_network, toolkit)
        names = list(config.search.moves or toolkit.operations.names())
        self.operations = [toolkit.operations.get(n) for n in names]
        self.time_models = {d.name: self._time_model(d, "time_model") for d in config.devices}
        self.measures = {d.name: self._time_model(d, "measure") for d in config.devices if d.measure is not None}
        self.evaluator_options = self._evaluator_options()
        self._check_evaluator()
        self.predictor_targets = ["accuracy"] + (["train_time_s"] if config.needs("train_time_s") else [])
        self.predictors: dict[str, Any] = {}  # target -> fitted predictor
        for target in self.predictor_targets:
            self._new_predictor(target)  # validates the options now, not after the first round
        self.context = LoopContext(self)
        self.strategy: Strategy = self._strategy()
        self.executor: Executor = self._executor()  # last: a Ray executor connects to its cluster

    # ---- building components, config errors named by key ------------------------------------------
    def _time_model(self, dev: DeviceSpec, which: str) -> Any:
        comp = dev.time_model if which == "time_model" else dev.measure
        key = f"devices.{dev.name}.{which}"
        options = dev.time_model_options(which)
        try:
            return self.tk.time_models.get(comp.name)(**options)
        except NAToolkitError as exc:
            raise ConfigError(f"{key} ({comp.name} on device {options['device']!r}): {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}.options: time model {comp.name!r} refused {comp.options}: {exc}") from None

    def _evaluator_options(self) -> dict[str, Any]:
        opts = dict(self.config.evaluator.options)
        if self.config.dataset is not None:
            given = opts.get("dataset")
            if given is not None and given != self.config.dataset:
                raise ConfigError(
                    f"evaluator.options.dataset ({given!r}) differs from dataset ({self.config.dataset!r}); give one"
                )
            opts["dataset"] = self.config.dataset
        return opts

    def _check_evaluator(self) -> None:
        name = self.config.evaluator.name
        try:
            evaluator = self.tk.evaluators.get(name)(**self.evaluator_options)
        except NAToolkitError as exc:
            raise ConfigError(f"evaluator ({name}): {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"evaluator.options: evaluator {name!r} refused {self.evaluator_options}: {exc}") from None
        check = getattr(evaluator, "check", None)
        if check is not None:
            try:
                check(self.seed_arch)
            except NAToolkitError as exc:
                raise ConfigError(
                    f"evaluator {name!r} cannot evaluate seed_network {self.config.seed_network!r} on dataset "
                    f"{self.evaluator_options.get('dataset')!r}: {exc}"
                ) from None

    def _new_predictor(self, target: str) -> Any:
        comp = self.config.predictors[target]
        try:
            pred = self.tk.predictors.get(comp.name)(**comp.options)
            params = pred.get_params()
        except NAToolkitError as exc:
            raise ConfigError(f"predictors.{target} ({comp.name}): {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"predictors.{target}.options: predictor {comp.name!r} refused {comp.options}: {exc}") from None
        # scikit-learn convention: a fixed random_state makes refits (and so a resumed run) reproducible
        if "random_state" in params and params["random_state"] is None:
            pred.set_params(random_state=self.config.random_seed)
        return pred

    def _executor(self) -> Executor:
        comp = self.config.executor
        try:
            return make_executor(comp.name, comp.options, self.tk)
        except ConfigError as exc:
            raise ConfigError(f"executor ({comp.name}): {exc}") from None

    def _strategy(self) -> Strategy:
        comp = self.config.strategy
        try:
            return self.tk.strategies.get(comp.name)(self.context, **comp.options)
        except ConfigError as exc:
            raise ConfigError(f"strategy.options: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"strategy.options: strategy {comp.name!r} refused {comp.options}: {exc}") from None

    # ---- estimates and scores -----------------------------------------------------------------------
    def _estimate(self, dev: DeviceSpec, arch: Architecture, which: str) -> dict[str, float]:
        """The device metrics of `arch` from the device's time model (`which`="time_model") or its
        measuring one ("measure"); measured values are stored and served from the store thereafter."""
        key = (dev.name, which, arch.hash)
        cached = self._estimates.get(key)
        if cached is not None:
            return cached
        tm = self.time_models[dev.name] if which == "time_model" else self.measures[dev.name]
        if getattr(tm, "measures", False):
            settings = f"{which}:batch={dev.batch_size}"
            tm_name = (dev.time_model if which == "time_model" else dev.measure).name
            doc = self.store.measurement(arch.hash, dev.name, tm_name, settings)
            if doc is None:
                result = self.executor.run(
                    [Task("measure", arch.to_json(), tm_name, dev.time_model_options(which), dev.batch_size)],
                    exclusive=True,
                )[0]
                if not result.ok:
                    raise TimeModelError(f"device {dev.name}: {tm_name} failed on {arch.hash}: {result.error}")
                doc = result.value
                self.store.add_measurement(arch.hash, dev.name, tm_name, settings, doc)
                self.counters.measurements += 1
            else:
                self.counters.measurements_replayed += 1
        else:
            doc = asdict(tm.estimate(arch, dev.batch_size))
            self.counters.time_model_calls += 1
        metrics = {
            device_metric(m, dev.name): float(doc[m]) for m in ESTIMATE_METRICS if doc.get(m) is not None
        }
        self._estimates[key] = metrics
        return metrics

    @cached_property
    def _screened_budgets(self) -> tuple[Budget, ...]:
        """The hard budgets a proposal can be checked against for free before it is evaluated: model size,
        and each device metric whose time model runs nothing (table, analytic, learned) and is also what
        decides the device's feasibility (no separate `measure`). Empty when search.screen_hard_budgets
        is off."""
        if not self.config.search.screen_hard_budgets:
            return ()
        known = {"model_size_bytes"}
        for dev in self.config.devices:
            if dev.measure is None and not getattr(self.time_models[dev.name], "measures", False):
                known.update(device_metric(m, dev.name) for m in ESTIMATE_METRICS)
        return tuple(b for b in self.config.budgets if b.hard and b.metric in known)

    def _breaks_screened_budget(self, arch: Architecture) -> bool:
        budgets = self._screened_budgets
        if not budgets:
            return False
        metrics = {"model_size_bytes": float(arch.cost.model_size_bytes)}
        devices = {b.device for b in budgets}
        try:
            for dev in self.config.devices:
                if dev.name in devices:
                    metrics.update(self._estimate(dev, arch, "time_model"))
        except TimeModelError:
            return False  # the evaluation will report the failure
        return any(b.metric in metrics and metrics[b.metric] > b.limit for b in budgets)

    def _prior(self, target: str) -> tuple[float, float]:
        """Mean and spread of the ground truth so far: what an unfitted predictor says of any candidate."""
        values = [e.score.metrics[target] for e in self.evaluated.values() if target in e.score.metrics and e.error is None]
        if not values:
            return 0.0, 1.0
        mean = float(np.mean(values))
        return mean, max(float(np.std(values)), 0.05 * abs(mean), 1e-3)

    def _predict(self, target: str, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        pred = self.predictors.get(target)
        if pred is None:
            mean, std = self._prior(target)
            return np.full(len(archs), mean), np.full(len(archs), std)
        self.counters.predictor_calls += len(archs)
        mean, std = pred.predict_with_std(list(archs))
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        """Predicted scores: predictors for accuracy (and training time), time models per device."""
        archs = list(archs)
        self.counters.score_calls += 1
        self.counters.candidates_scored += len(archs)
        if not archs:
            return []
        acc, acc_std = self._predict("accuracy", archs)
        train = self._predict("train_time_s", archs) if "train_time_s" in self.predictor_targets else None
        out = []
        for i, arch in enumerate(archs):
            metrics: dict[str, float] = {"accuracy": float(acc[i]), "model_size_bytes": float(arch.cost.model_size_bytes)}
            if train is not None:
                metrics["train_time_s"] = float(train[0][i])
            try:
                for dev in self.config.devices:
                    metrics.update(self._estimate(dev, arch, "time_model"))
            except TimeModelError as exc:
                out.append(self._failed_score(f"time model failed: {exc}", metrics, real=False))
                continue
            r = compute_reward(metrics, self.config.budgets, self.config.objectives)
            up = 0.0
            if acc_std[i] > 0:  # the reward's spread from the accuracy's: one std up, through the reward function
                up = compute_reward({**metrics, "accuracy": float(acc[i] + acc_std[i])}, self.config.budgets,
                                    self.config.objectives).reward - r.reward
            out.append(Score(r.reward, metrics, r.feasible, max(up, 0.0), real=False, violations=r.violations))
        return out

    def _failed_score(self, why: str, metrics: Mapping[str, float] | None = None, real: bool = True) -> Score:
        """The lowest reward: below every candidate that could be evaluated, hard budgets broken included."""
        return Score(self.config.objectives.infeasible_reward - 1.0, dict(metrics or {}), False, 0.0, real, (why,))

    def _real_score(self, arch: Architecture, rec: EvaluationRecord) -> tuple[Score, dict[str, bool]]:
        devices = [d.name for d in self.config.devices]
        if rec.error is not None:
            return self._failed_score(f"evaluation failed: {rec.error}"), dict.fromkeys(devices, False)
        metrics = dict(rec.metrics)
        try:
            for dev in self.config.devices:
                which = "measure" if dev.measure is not None else "time_model"
                metrics.update(self._estimate(dev, arch, which))
        except TimeModelError as exc:
            return self._failed_score(f"measurement failed: {exc}", metrics), dict.fromkeys(devices, False)
        r = compute_reward(metrics, self.config.budgets, self.config.objectives)
        return Score(r.reward, metrics, r.feasible, 0.0, True, r.violations), {d: r.feasible_for(d) for d in devices}

    # ---- ground truth ----------------------------------------------------------------------------------
    def _ground_truth_metrics(self, arch: Architecture, result: Mapping[str, Any]) -> dict[str, float]:
        metrics = {"accuracy": float(result["valid_accuracy"]), "model_size_bytes": float(arch.cost.model_size_bytes)}
        if result.get("test_accuracy") is not None:
            metrics["test_accuracy"] = float(result["test_accuracy"])
        if result.get("train_time_s") is not None:
            metrics["train_time_s"] = float(result["train_time_s"])
        return metrics

    def evaluate(self, cands: Sequence[Candidate], round: int) -> list[Evaluated]:
        """Ground truth for `cands` (none evaluated before): from the store when a resumed run already paid
        for it, else through the executor, each stored the moment it finishes."""
        records: dict[int, EvaluationRecord] = {}
        todo: list[int] = []
        for i, c in enumerate(cands):
            rec = self.store.evaluation(c.hash)
            if rec is not None:
                records[i] = rec
                self.counters.evaluations_replayed += 1
                self._tick()
            else:
                todo.append(i)
        tasks = [
            Task("evaluate", cands[i].arch.to_json(), self.config.evaluator.name, self.evaluator_options,
                 keep_weights=self.config.search.keep_weights)
            for i in todo
        ]

        def stored(j: int, res: TaskResult) -> None:
            i = todo[j]
            arch = cands[i].arch
            if res.ok:
                if res.weights is not None:  # before the evaluation: a stored evaluation always has its weights
                    self.store.save_weights(arch.hash, res.weights)
                metrics = self._ground_truth_metrics(arch, res.value)
                targets = {t: metrics[t] for t in self.predictor_targets if t in metrics}
                records[i] = self.store.add_evaluation(
                    arch.hash, arch.to_json(), metrics, {**res.value, "moves": [m.to_json() for m in cands[i].moves],
                                                         "origin": cands[i].origin, "parent": cands[i].parent},
                    round, res.elapsed_s, targets=targets,
                )
            else:
                records[i] = self.store.add_evaluation(
                    arch.hash, arch.to_json(), {}, {"details": res.details}, round, res.elapsed_s, error=res.error
                )
            self._tick()

        if tasks:
            self.executor.run(tasks, on_result=stored)
        out = []
        for i, c in enumerate(cands):
            rec = records[i]
            score, feasible_for = self._real_score(c.arch, rec)
            ev = Evaluated(len(self._order), round, c, score, rec.result, rec.error, feasible_for)
            self.evaluated[c.hash] = ev
            self._order.append(c.hash)
            self.counters.evaluations += 1
            self.counters.failed_evaluations += rec.error is not None
            out.append(ev)
        self._update_bar()
        return out

    def refit(self) -> None:
        """Refit each target's predictor from scratch on all ground truth so far (deterministic)."""
        for target in self.predictor_targets:
            rows = [e for e in (self.evaluated[h] for h in self._order) if e.error is None and target in e.score.metrics]
            if len(rows) < self.config.search.min_fit:
                continue
            pred = self._new_predictor(target)
            try:
                pred.fit([e.candidate.arch for e in rows], np.array([e.score.metrics[target] for e in rows]))
            except NAToolkitError as exc:  # e.g. too few distinct samples: keep the previous model
                msg = f"predictor for {target} not refit on {len(rows)} samples: {exc}"
                if msg not in self.warnings:
                    self.warnings.append(msg)
                continue
            self.predictors[target] = pred
            self.counters.predictor_fits += 1

    def checkpoint(self, round: int) -> None:
        self.store.save_checkpoint(round, "strategy", self.strategy.state_dict())
        self.store.save_checkpoint(round, "rng", self.rng.bit_generator.state)
        for target, pred in self.predictors.items():
            # the predictor's own no-pickle document (schema version, params, state); a predictor without
            # one is checkpointed as its name, parameters and training set (it refits on those)
            try:
                state = pred.to_json()
            except (AttributeError, NotImplementedError):
                state = {"predictor": self.config.predictors[target].name,
                         "params": {k: v for k, v in pred.get_params().items() if _jsonable(v)}}
            state["trained_on"] = [h for h in self._order if self.evaluated[h].error is None]
            self.store.save_checkpoint(round, f"predictor:{target}", state)

    # ---- progress --------------------------------------------------------------------------------------
    def _start_bar(self) -> None:
        if not self.progress:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=self.config.evaluations, desc="search", unit="eval", file=sys.stderr, dynamic_ncols=True)

    def _tick(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _update_bar(self) -> None:
        if self._bar is None:
            return
        real = [e for e in self.evaluated.values() if e.error is None]
        feasible = [e for e in real if e.score.feasible]
        best = max((e.score.reward for e in feasible), default=None)
        self._bar.set_postfix(best_reward="-" if best is None else f"{best:.4f}", feasible=len(feasible), refresh=True)

    # ---- the run ---------------------------------------------------------------------------------------
    def _seed_warnings(self) -> None:
        """Tell the user at the start when the seed already breaks a budget (by the time models)."""
        score = self.score([self.seed_arch])[0]
        self.counters.score_calls -= 1
        self.counters.candidates_scored -= 1
        for b in self.config.budgets:
            value = score.metrics.get(b.metric)
            if value is not None and value > b.limit:
                self.warnings.append(
                    f"the seed exceeds budget {b.metric} ({value:.6g} > {b.limit:.6g}): the search must shrink it"
                )

    def run(self) -> tuple[str, float]:
        """Run (or replay and continue) the search; returns (stop reason, elapsed seconds)."""
        started = time.perf_counter()
        cfg = self.config
        budget = cfg.evaluations
        self._start_bar()
        try:
            self._seed_warnings()
            round_ = 0
            if cfg.search.evaluate_seed:
                seed_cand = Candidate(self.seed_arch, (), None, "seed")
                results = self.evaluate([seed_cand], round_)
                self.refit()
                self.strategy.tell([(e.candidate, e.score) for e in results])
                self.checkpoint(round_)
            stalled = 0
            screened_total = 0  # dropped by the screen since the last round that evaluated something
            reason = f"the evaluation budget ({budget}) is spent"
            while self.counters.evaluations < budget:
                round_ += 1
                self.counters.rounds = round_
                n = min(cfg.search.per_round, budget - self.counters.evaluations)
                proposed: list[Candidate] = []
                new: list[Candidate] = []
                known: dict[int, Evaluated] = {}
                seen: set[str] = set()
                many = False  # did one ask return more than n (the loop then ranks them)?
                for _ in range(1 + (SCREEN_ASKS if self._screened_budgets else 0)):
                    batch = list(self.strategy.ask(n))
                    self.counters.strategy_asks += 1
                    self.counters.proposed += len(batch)
                    many = many or len(batch) > n
                    dropped = 0
                    for c in batch:
                        i = len(proposed)
                        proposed.append(c)
                        if c.hash in self.evaluated:
                            known[i] = self.evaluated[c.hash]
                            self.counters.duplicates += 1
                        elif c.hash not in seen:
                            seen.add(c.hash)
                            if self._breaks_screened_budget(c.arch):
                                dropped += 1
                            else:
                                new.append(c)
                    self.counters.screened += dropped
                    screened_total += dropped
                    # ask again only to replace what the screen dropped, while short of n
                    if len(new) >= n or not dropped or not batch:
                        break
                if not many:
                    new = new[:n]  # a strategy proposing exactly n gets its first n feasible ones, in order
                if len(new) > n:
                    scores = self.score([c.arch for c in new])
                    ucb = [s.reward + cfg.search.ucb_kappa * s.uncertainty for s in scores]
                    keep = sorted(range(len(new)), key=lambda i: -ucb[i])[:n]  # stable: ties keep proposal order
                    new = [new[i] for i in sorted(keep)]
                if not new:
                    stalled += 1
                    if known:
                        self.strategy.tell([(proposed[i], e.score) for i, e in known.items()])
                    if stalled >= cfg.search.max_stalled_rounds:
                        reason = (
                            f"the strategy proposed no new candidate in {stalled} rounds in a row "
                            f"({self.counters.evaluations} of {budget} evaluations used)"
                        )
                        if screened_total:
                            limits = ", ".join(f"{b.metric} <= {b.limit:g}" for b in self._screened_budgets)
                            reason += (f"; {screened_total} proposals broke a hard budget ({limits}) and were "
                                       "dropped before evaluation: the budget may be out of reach from this seed")
                        break
                    continue
                stalled = 0
                screened_total = 0
                results = {c.hash: e for c, e in zip(new, self.evaluate(new, round_))}
                self.refit()
                told: list[tuple[Candidate, Score]] = []
                for i, c in enumerate(proposed):  # in proposal order; a candidate proposed twice is told once
                    if i in known:
                        told.append((c, known[i].score))
                    elif c.hash in results:
                        told.append((c, results.pop(c.hash).score))
                self.strategy.tell(told)
                self.checkpoint(round_)
        finally:
            if self._bar is not None:
                self._bar.close()
            self.executor.close()
        return reason, time.perf_counter() - started

    # ---- results ---------------------------------------------------------------------------------------
    def result(self, run_id: str, reason: str, elapsed_s: float) -> SearchResult:
        devices = [d.name for d in self.config.devices]
        evaluated = [self.evaluated[h] for h in self._order]
        ok = [e for e in evaluated if e.error is None]
        archive = ParetoArchive(search_objectives(devices))
        for e in ok:
            archive.add(e.hash, e.score.metrics)

        def best_of(rows: list[Evaluated], device: str | None = None) -> str | None:
            """Highest accuracy; ties go to the higher reward, then the faster on `device`, the smaller, the
            earlier evaluated."""
            if not rows:
                return None
            lat = f"latency_ms@{device}"
            top = max(rows, key=lambda e: (e.score.metrics["accuracy"], e.score.reward, -e.score.metrics.get(lat, 0.0),
                                           -e.score.metrics["model_size_bytes"], -e.seq))
            return top.hash

        best = {d: best_of([e for e in ok if e.feasible_for.get(d)], d) for d in devices}
        best_overall = best_of([e for e in ok if e.score.feasible])
        infeasible = {}
        for d in devices + ["all"]:
            if (best_overall if d == "all" else best[d]) is None:
                infeasible[d] = self._why_infeasible(ok, None if d == "all" else d)
        return SearchResult(
            run_id=run_id, run_dir=self.run_dir, status="finished", stop_reason=reason, seed_hash=self.seed_arch.hash,
            devices=devices, evaluated=evaluated, pareto=[h for h in self._order if h in archive], best=best,
            best_overall=best_overall, infeasible=infeasible, counters=self.counters, elapsed_s=elapsed_s,
            config=self.config.to_json(), warnings=list(self.warnings),
            budgets=[asdict(b) for b in self.config.budgets], strategy=self.config.strategy.name,
            evaluation_budget=self.config.evaluations,
        )

    def _why_infeasible(self, ok: list[Evaluated], device: str | None) -> str:
        where = f"device {device}" if device else "every device"
        budgets = [b for b in self.config.budgets if device is None or split_metric(b.metric)[1] in (None, device)]
        if not ok:
            return f"no candidate was evaluated successfully, so none is known to meet the budgets of {where}"
        # the candidate closest to feasible: smallest total relative overshoot
        def overshoot(e: Evaluated) -> float:
            return sum(b.excess(e.score.metrics[b.metric]) for b in budgets if b.metric in e.score.metrics)

        closest = min(ok, key=overshoot)
        parts = [
            f"{b.metric} {closest.score.metrics[b.metric]:.6g} > budget {b.limit:.6g}"
            for b in budgets if b.metric in closest.score.metrics and closest.score.metrics[b.metric] > b.limit
        ]
        return (
            f"no candidate of {len(ok)} evaluated meets the budgets of {where}; the closest ({closest.hash}) has "
            + "; ".join(parts) + ". Loosen the budget or start from a smaller seed network"
        )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


# ---- the library API ---------------------------------------------------------------------------------
def _new_run_dir(output: Path, name: str) -> tuple[str, Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = f"{name}-{stamp}"
    run_dir = output / run_id
    i = 2
    output.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            run_dir.mkdir()  # atomic: two runs started in the same second get two folders
            return run_id, run_dir
        except FileExistsError:
            run_id = f"{name}-{stamp}-{i}"
            run_dir = output / run_id
            i += 1


def resolve_run_dir(run: str | Path, output: Path | None = None) -> Path:
    """A run folder given as a path, or as a run id inside `output`."""
    path = Path(run)
    if (path / STORE_FILE).is_file() or path.suffix == ".sqlite":
        return path if path.is_dir() else path.parent
    if output is not None and (output / str(run) / STORE_FILE).is_file():
        return output / str(run)
    raise StoreError(f"no run folder {str(run)!r} (a folder holding {STORE_FILE}, made by `na-toolkit search`)")


def _config_differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        full = f"{prefix}{key}"
        if isinstance(a.get(key), Mapping) and isinstance(b.get(key), Mapping):
            out += _config_differences(a[key], b[key], full + ".")
        elif a.get(key) != b.get(key):
            out.append(full)
    return out


def run_search(
    config: Any = None,
    resume: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    outputs: bool = True,
    toolkit: Any = None,
) -> SearchResult:
    """Run a search from a config (TOML path, dict or SearchConfig) and return its result; the same options
    as `na-toolkit search`. `resume=RUN` (a run folder) continues a killed run: it replays the run from the
    start, serving every stored evaluation and measurement, so nothing is evaluated twice and the result
    equals an uninterrupted run. `overrides` replace top-level config keys (evaluations, output, random_seed);
    `run_dir` fixes the run folder (default: a new `<output>/<name>-<time>` folder)."""
    if toolkit is None:
        from ..plugins import get_toolkit

        toolkit = get_toolkit()
    if resume is not None:
        out_dir = None
        if config is not None:
            out_dir = load_config(config, overrides=overrides, toolkit=toolkit).output
        folder = resolve_run_dir(resume, out_dir)
        store = RunStore.open(folder)
        stored = store.run().config
        cfg = load_config(stored, toolkit=toolkit)
        if config is not None:
            given = load_config(config, overrides=overrides, toolkit=toolkit).to_json()
            diff = [k for k in _config_differences(stored, given) if k != "output"]
            if diff:
                store.close()
                raise ConfigError(
                    f"run {store.run_id} was started with a different config ({', '.join(diff)} differ): "
                    f"resume it without a config, or start a new run"
                )
        run_id = store.run_id
    else:
        if config is None:
            raise ConfigError("run_search needs a config (a TOML path, a dict or a SearchConfig) or resume=RUN")
        cfg = load_config(config, overrides=overrides, toolkit=toolkit)
        if run_dir is not None:
            folder = Path(run_dir)
            run_id = folder.name
        else:
            run_id, folder = _new_run_dir(cfg.output, cfg.name)
        store = None
    try:
        loop = SearchLoop(cfg, store, folder, toolkit, progress)
        if store is None:  # the run is created only once every component built cleanly from the config
            store = RunStore.create(folder / STORE_FILE, run_id, cfg.to_json())
            loop.store = store
        else:
            store.set_status("running")
        reason, elapsed = loop.run()
        result = loop.result(run_id, reason, elapsed)
        if outputs:
            from .outputs import write_outputs

            write_outputs(result, store)
        store.set_status("finished", result.summary())
        return result
    except BaseException as exc:
        if store is None and run_dir is None and resume is None:
            try:
                folder.rmdir()  # reserved by _new_run_dir; nothing was stored in it
            except OSError:
                pass
        if store is not None:
            interrupted = isinstance(exc, KeyboardInterrupt)
            try:
                store.set_status("running" if interrupted else "failed")
            except NAToolkitError:
                pass
            if store.count_evaluations():
                print(f"na-toolkit: the run keeps its {store.count_evaluations()} evaluations; continue it with "
                      f"`na-toolkit search --resume {folder}`", file=sys.stderr)
        raise
    finally:
        if store is not None:
            store.close()
