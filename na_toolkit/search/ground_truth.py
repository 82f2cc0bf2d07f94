"""The ground truth of a run: evaluations and measurements, paid for through the executor and kept in the
run store.

Every value measured is stored the moment it exists (each evaluation in its own write, as the executor
hands it back), and before it is used; a resumed run replays from the start and is served every stored
evaluation and measurement instead of paying for it again, so it retraces the interrupted run exactly.
The predictors are refit on all ground truth so far (the paper's joint training): from scratch, or, a
predictor that keeps its state (pretrained, or sharing its embedding), from where its last fit left it.

The run's state is stored once, when the run ends (`save_final_state`: the strategy's `state_dict`, the RNG's
state and each target's predictor, as checkpoints of the last round), for inspection, the strategy's report
(summary.json's `controller`) and export. A resume never reads them: it replays the strategy and every refit
in order, so the kept predictors end as they would have without the interruption
(tests/test_kept_predictors.py), and the ranking of every replayed round has that round's predictors (a
checkpoint of the last ones could not give the earlier rounds theirs). Writing them each round cost a neural
strategy's controller weights and Adam moments (3 MB a round on NAS-Bench-201) and a neural predictor's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ComponentError, NAToolkitError, TimeModelError, blame, wrong_answer
from .executors import Task, TaskResult
from .strategy import Candidate
from .summary import Counters, Evaluated
from .task_arch import task_for

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..predictors.base import Predictor
    from ..store.base import EvaluationRecord, RunStore
    from .components import Components
    from .config import DeviceSpec
    from .scorer import Scorer
    from .strategy import Strategy


class GroundTruth:
    """Evaluations and measurements of one run (executor + store). `evaluated` maps each evaluated
    architecture's hash to its `Evaluated`, in evaluation order; `warnings` collects what the user should
    know (a predictor that could not be refit)."""

    def __init__(self, components: Components, store: RunStore, counters: Counters):
        self.components = components
        self.config = components.config
        self.store = store
        self.counters = counters
        self.evaluated: dict[str, Evaluated] = {}
        #: evaluations not yet given the accuracy predicted for them (see `note_predictions`)
        self._unpredicted: list[str] = []
        self.warnings: list[str] = []
        #: the last round done (the final state is stored under it, `save_final_state`)
        self.last_checkpoint = 0
        #: evaluations the store held when this session began (a resume's to serve), and whether the replay
        #: was found to leave some of them behind (`_check_replay`)
        self.stored_at_start = store.count_evaluations()
        self.diverged = False

    @property
    def history(self) -> list[Evaluated]:
        """Every evaluation so far, in order."""
        return list(self.evaluated.values())

    def observed(self, target: str) -> list[float]:
        return [
            e.score.metrics[target] for e in self.evaluated.values() if target in e.score.metrics and e.error is None
        ]

    # ---- measurements ----------------------------------------------------------------------------------
    def measure(self, dev: DeviceSpec, arch: Architecture, which: str) -> dict[str, Any]:
        """The estimate of `dev`'s measuring time model `which` ("time_model" or "measure") for `arch`: from
        the store, else measured now (alone: nothing runs beside a measurement) and stored."""
        settings = f"{which}:batch={dev.batch_size}"
        comp = dev.time_model if which == "time_model" else dev.measure
        assert comp is not None  # the scorer asks for "measure" only of devices that have one
        doc = self.store.measurement(arch.hash, dev.name, comp.name, settings)
        if doc is not None:
            self.counters.measurements += 1  # as evaluations count theirs: the replayed ones among them
            self.counters.measurements_replayed += 1
            return doc
        task = Task(
            "measure",
            arch.to_json(),
            comp.name,
            dev.time_model_options(which),
            dev.batch_size,
            selection=self.components.selection,
            resources={dev.resource: 1.0} if dev.resource else {},
        )
        result = self.components.executor.run([task_for(task, arch)], exclusive=True)[0]
        if not result.ok or result.value is None:
            raise TimeModelError(f"device {dev.name}: {comp.name} failed on {arch.hash}: {result.error}")
        doc = {**result.value, "worker": result.worker}  # where it was measured (a fleet's node)
        self.store.add_measurement(arch.hash, dev.name, comp.name, settings, doc)
        self.counters.measurements += 1
        return doc

    # ---- evaluations -----------------------------------------------------------------------------------
    def _metrics(self, arch: Architecture, result: Mapping[str, Any]) -> dict[str, float]:
        metrics = {"accuracy": float(result["valid_accuracy"]), "model_size_bytes": float(arch.cost.model_size_bytes)}
        if result.get("test_accuracy") is not None:
            metrics["test_accuracy"] = float(result["test_accuracy"])
        if result.get("train_time_s") is not None:
            metrics["train_time_s"] = float(result["train_time_s"])
        return metrics

    def evaluate(
        self, cands: Sequence[Candidate], round: int, scorer: Scorer, on_result: Callable[[], None] | None = None
    ) -> list[Evaluated]:
        """Ground truth for `cands` (none evaluated before): from the store when a resumed run already paid
        for it, else through the executor, each stored the moment it finishes (`on_result` is called for
        each, served or paid). Then each gets its real score from `scorer`, in order."""
        records: dict[int, EvaluationRecord] = {}
        todo: list[int] = []
        for i, c in enumerate(cands):
            rec = self.replayed(c)
            if rec is not None:
                records[i] = rec
                if on_result is not None:
                    on_result()
            else:
                todo.append(i)
        if todo:
            self._check_replay(cands[todo[0]], round)
        tasks = [self.evaluation_task(cands[i]) for i in todo]

        def stored(j: int, res: TaskResult) -> None:
            i = todo[j]
            records[i] = self.store_result(cands[i], round, res, tasks[j].arch_json)
            if on_result is not None:
                on_result()

        if tasks:
            self.components.executor.run(tasks, on_result=stored)
        return [self.record(c, round, records[i], scorer) for i, c in enumerate(cands)]

    def _check_replay(self, cand: Candidate, round: int) -> None:
        """Warn (once) when a resumed run pays for `cand` while stored evaluations were never served: the
        original run evaluated round by round, so a faithful replay serves every stored one before it
        evaluates anything new. A strategy that is not a function of its seed (a set's iteration order,
        which differs between processes, or state kept between instances) diverges this way."""
        unserved = self.stored_at_start - self.counters.evaluations_replayed
        if self.diverged or unserved <= 0:
            return
        self.diverged = True
        name = self.config.strategy.name
        plugin = self.components.toolkit.strategies.plugin_of(name)
        message = (
            f"the resumed run parted from the stored one in round {round}: strategy {name!r} (plugin {plugin}) "
            f"proposed {cand.hash}, which the run never evaluated, while {unserved} of the "
            f"{self.stored_at_start} stored evaluations were not proposed again; they stay in the store but "
            "not in this run, and what it evaluates from here is not what the uninterrupted run would have (a "
            "strategy must be a function of its seed: draw every random number from context.rng and iterate "
            "in a fixed order, never over a set of hashes, which differs between processes)"
        )
        self.warnings.append(message)
        logging.getLogger("na_toolkit.search").warning(f"warning: {message}")

    def replayed(self, cand: Candidate) -> EvaluationRecord | None:
        """The stored evaluation of `cand` when a resumed run already paid for it (counted as replayed)."""
        rec = self.store.evaluation(cand.hash)
        if rec is not None:
            self.counters.evaluations_replayed += 1
        return rec

    def record(self, cand: Candidate, round: int, rec: EvaluationRecord, scorer: Scorer) -> Evaluated:
        """`cand`'s stored evaluation `rec` with its real score from `scorer` (measuring it on each device
        with a measuring time model), added to the history."""
        score, feasible_for = scorer.real_score(cand.arch, rec)
        ev = Evaluated(len(self.evaluated), round, cand, score, rec.result, rec.error, feasible_for)
        if rec.error is None:
            self._unpredicted.append(cand.hash)
        self.evaluated[cand.hash] = ev
        self.counters.evaluations += 1
        self.counters.failed_evaluations += rec.error is not None
        said = getattr(self.components.executor, "warnings", None)  # a worker that died: the run's warnings too
        while said:
            message = said.pop(0)
            if message not in self.warnings:
                self.warnings.append(message)
        return ev

    def evaluation_task(self, cand: Candidate) -> Task:
        """The executor task that evaluates `cand` (plain data: it travels to a worker unchanged). With
        `search.inherit_weights` it carries the weights of `cand`'s nearest evaluated ancestor (search/inherit.py)."""
        inherit = None
        if self.config.search.inherit_weights:
            from .inherit import parent_weights

            c = self.components
            inherit = parent_weights(cand, c.seed_arch, c.move_types, self.evaluated, self.store)
        task = Task(
            "evaluate",
            cand.arch.to_json(),
            self.config.evaluator.name,
            self.components.evaluator_options,
            keep_weights=self.config.search.keep_weights or self.config.search.inherit_weights,
            selection=self.components.selection,
            inherit=inherit,
        )
        return task_for(task, cand.arch)  # run in this process, it needs no rebuild from its JSON

    def store_result(
        self, cand: Candidate, round: int, res: TaskResult, arch_json: dict[str, Any] | None = None
    ) -> EvaluationRecord:
        """Store what the executor gave for `cand` (its weights first, when it has them); `arch_json`: its
        task's `arch_json` (`cand.arch.to_json()`, which the store only reads), not made again."""
        arch = cand.arch
        if arch_json is None:
            arch_json = arch.to_json()
        if not res.ok or res.value is None:
            return self.store.add_evaluation(
                arch.hash, arch_json, {}, {"details": res.details}, round, res.elapsed_s, error=res.error
            )
        self._check_delivery(arch, res.value)
        if res.weights is not None:  # before the evaluation: a stored evaluation always has its weights
            self.store.save_weights(arch.hash, res.weights)
        metrics = self._metrics(arch, res.value)
        targets = {t: metrics[t] for t in self.components.predictor_targets if t in metrics}
        result = {**res.value, "moves": [m.to_json() for m in cand.moves], "origin": cand.origin, "parent": cand.parent}
        return self.store.add_evaluation(arch.hash, arch_json, metrics, result, round, res.elapsed_s, targets=targets)

    def _check_delivery(self, arch: Architecture, value: dict[str, Any]) -> None:
        """A ComponentError naming the executor when it handed `arch`'s task the result of another network (an
        evaluator's own result of the wrong network is its fault, found in the task: `task_answer.py`): the
        wrong figure would be stored under this network, so nothing of it is."""
        gave = value.get("arch_hash")
        if gave is None or gave == arch.hash:
            return
        executor = self.components.executor
        raise wrong_answer(
            f"executor {executor.name!r}",
            executor._plugin(),
            f"the task of network {arch.hash} the result of network {gave}",
            ["each ticket's result must be its own task's (results handed to the wrong tickets); nothing was stored"],
        )

    # ---- predictors and checkpoints --------------------------------------------------------------------
    def refit(self, scorer: Scorer) -> None:
        """Refit each target's predictor on all ground truth so far (deterministic; `fit_predictors`) and hand
        it to `scorer`; a predictor that cannot be fit (too few distinct samples) keeps the previous one."""
        self.note_predictions(scorer)
        history = self.history
        self.apply_fit(self.fit_predictors(history), scorer, history)

    def note_predictions(self, scorer: Scorer) -> None:
        """Record on each evaluation since the last call the accuracy the current predictor gives it, just
        before the predictors learn from it (one batched call; `Evaluated.predicted_accuracy`)."""
        todo, self._unpredicted = self._unpredicted, []
        values = scorer.predicted_accuracies([self.evaluated[h].candidate.arch for h in todo])
        for h, value in zip(todo, values or ()):
            self.evaluated[h] = replace(self.evaluated[h], predicted_accuracy=value)

    def fit_predictors(self, history: Sequence[Evaluated]) -> tuple[dict[str, Predictor], list[str]]:
        """New predictors fit on `history` (a snapshot: safe to run in another thread while the loop goes
        on; a kept predictor is fit as a copy, `Components.new_predictor`), and the warnings of those that
        could not be fit."""
        fitted: dict[str, Predictor] = {}
        warnings = []
        for target in self.components.predictor_targets:
            rows = [e for e in history if e.error is None and target in e.score.metrics]
            if len(rows) < self.config.search.min_fit:
                continue
            pred = self.components.new_predictor(target)
            plugin = self.components.toolkit.predictors.plugin_of(pred.name)
            try:
                with blame(f"{target} predictor {pred.name!r}", plugin, f"to fit on {len(rows)} evaluations"):
                    pred.fit([e.candidate.arch for e in rows], np.array([e.score.metrics[target] for e in rows]))
            except ComponentError:
                raise
            except NAToolkitError as exc:
                warnings.append(f"predictor for {target} not refit on {len(rows)} samples: {exc}")
                continue
            fitted[target] = pred
        return fitted, warnings

    def apply_fit(
        self, fit: tuple[dict[str, Predictor], list[str]], scorer: Scorer, history: Sequence[Evaluated] | None = None
    ) -> None:
        """Hand the predictors of `fit_predictors` to `scorer` (the ones not fit keep their previous one), and
        rescale its devices' latency estimates by the measurements in `history`, the evaluations they were
        fit on (`Scorer.rescale`; default: every evaluation so far)."""
        scorer.rescale(self.history if history is None else history)
        fitted, warnings = fit
        for msg in warnings:
            if msg not in self.warnings:
                self.warnings.append(msg)
        for target, pred in fitted.items():
            scorer.predictors[target] = pred
            self.components.keep(target, pred)
            self.counters.predictor_fits += 1

    def save_final_state(
        self, strategy: Strategy, rng: np.random.Generator, predictors: Mapping[str, Predictor]
    ) -> None:
        """Store the state the run ended with as the checkpoints of its last round: the strategy's
        `state_dict` (`strategy`: its report is what outputs.py reads), the RNG's (`rng`) and each target's
        predictor (`save_predictors`). Each replaces any earlier round's of its kind (a run folder written
        before kept the latest two rounds' of each); nothing reads them back on resume."""
        self.store.save_checkpoint(self.last_checkpoint, "strategy", strategy.state_dict(), keep=1)
        self.store.save_checkpoint(self.last_checkpoint, "rng", rng.bit_generator.state, keep=1)
        self.save_predictors(predictors)

    def save_predictors(self, predictors: Mapping[str, Predictor]) -> None:
        """Store each target's final predictor as the checkpoint `predictor:TARGET` of the run's last round,
        for inspection and export; nothing reads it back on resume."""
        for target, pred in predictors.items():
            # the predictor's own no-pickle document (schema version, params, state); a predictor without
            # one is stored as its name, parameters and training set (it refits on those)
            try:
                state = pred.to_json()
            except (AttributeError, NotImplementedError):
                state = {
                    "predictor": self.config.predictors[target].name,
                    "params": {k: v for k, v in pred.get_params().items() if _jsonable(v)},
                }
            state["trained_on"] = [h for h, e in self.evaluated.items() if e.error is None]
            self.store.save_checkpoint(self.last_checkpoint, f"predictor:{target}", state, keep=1)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
