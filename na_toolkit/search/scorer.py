"""The scorer: a candidate's predicted score (predictors + each device's time model + the reward), the
real score of an evaluated one, and the hard-budget screen.

Predicted scores are what strategies call `context.score` for (cheap, counted apart from evaluations):
accuracy (and training time when a budget limits it) from the predictors, or, before the first fit, the
mean and spread of the ground truth so far; each device's metrics from its time model. The reward's
uncertainty is the reward one accuracy standard deviation up, minus the reward (UCB ranks on it).

Time-model estimates are cached per (device, time model, architecture). A time model that measures (runs
the network) is ground truth: its values come from `Truth.measure`, which serves them from the run store or
pays for them through the executor and stores them.

The screen: the hard budgets a proposal can be checked against for free before it is evaluated -- model
size, and each device metric whose time model runs nothing (table, analytic, learned) and also decides
the device's feasibility (no separate `measure`).

Rescaling (`rescale`, at each refit): on a device whose `measure` judges the evaluated networks and whose
time model runs nothing, the time model's latency estimates are multiplied by a factor learnt from the run's
evaluated networks (`devices.NAME.rescale_by_measure`, on by default there; from `MIN_RESCALE_NETWORKS`
networks on): the median of measured over estimated latency, moved for each network towards the ratios of
the measured networks most like it (`rescale_neighbours`; rescale.py). So the proposals are ranked against
the budgets as the measurements will judge them (docs/search.md has the figures).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigError, TimeModelError, blame, wrong_answer
from ..timemodels.base import estimate_problems
from .diagnostics import CAPACITY_ADVICE, is_capacity
from .measure_warnings import MeasurementWarnings, beside_measured
from .rescale import MIN_RESCALE_NETWORKS, LatencyScale, Neighbours, Signature
from .reward import Budget, compute_reward, device_metric, failed_reward
from .strategy import Score
from .summary import seed_metrics
from .train_time import device_train_metric, trains

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..predictors.base import Predictor
    from ..store.base import EvaluationRecord
    from .components import Components
    from .config import DeviceSpec
    from .summary import Counters, Evaluated

logger = logging.getLogger("na_toolkit.search")

#: metrics a time model's estimate gives, by TimeEstimate field
ESTIMATE_METRICS = ("latency_ms", "peak_memory_bytes", "energy_mj")


class Truth(Protocol):
    """What the scorer reads of the ground truth (a `GroundTruth`)."""

    def measure(self, device: DeviceSpec, arch: Architecture, which: str) -> dict[str, Any]:
        """The estimate (a TimeEstimate as a dict) of the measuring time model `which` of `device`: from the
        run store, or measured now and stored."""
        ...

    def observed(self, target: str) -> list[float]:
        """The values of `target` of every successful evaluation so far, in evaluation order."""
        ...


class Scorer:
    """Scores of the search's candidates. `predictors` holds the fitted predictor of each target (set by
    `GroundTruth.refit`); `truth` serves measurements and the prior of an unfitted target (None: no
    measuring time model may be used, and the prior is the default)."""

    def __init__(self, components: Components, counters: Counters, truth: Truth | None = None):
        self.components = components
        self.config = components.config
        self.counters = counters
        self.truth = truth
        self.predictors: dict[str, Predictor] = {}  # target -> fitted predictor
        self._estimates: dict[tuple[str, str, str], dict[str, float]] = {}
        #: device -> the factor its time model's latency estimates are multiplied by (`rescale`)
        self.scales: dict[str, LatencyScale] = {}
        #: device -> each network's factor from its most similar measured networks (`rescale_neighbours`)
        self._neighbours: dict[str, Neighbours] = {}
        #: (device, arch hash) -> that factor, until the next `rescale`; measured arch hash -> its layers' signature
        self._factors: dict[tuple[str, str], float] = {}
        self._signatures: dict[str, Signature] = {}
        #: (device, arch hash) -> the p10 and p90 of a measured latency (its run-to-run spread) and the load it
        #: was measured under (`beside_measured`): a real score's metrics carry them beside the latency
        self._beside: dict[tuple[str, str], dict[str, float]] = {}
        #: budget decisions that lie within a measurement's spread (the run's summary and report show them)
        self.noise_warnings: list[str] = []
        #: device -> (1-minute load average, cores) of the machine each of its measurements ran on (None: unknown)
        self._loads: dict[str, list[tuple[Any, Any]]] = {}
        #: the warnings each measurement came with (an unstable median, a contended core), told per device
        self.measurement_warnings = MeasurementWarnings()
        #: the budgets the seed broke by the time models at the start, with the estimate: (budget, value)
        self.seed_over_budget: list[tuple[Budget, float]] = []

    # ---- time models -----------------------------------------------------------------------------------
    def estimate(self, dev: DeviceSpec, arch: Architecture, which: str) -> dict[str, float]:
        """The device metrics of `arch` from the device's time model (`which`="time_model"; its latency
        rescaled once `rescale` has a factor for the device) or its measuring one ("measure"); measured values
        come from the ground truth."""
        metrics = self._estimate(dev, arch, which)
        scale = self.scales.get(dev.name) if which == "time_model" else None
        if scale is None:  # the common case, on the hot path of scoring: nothing more to look up
            return metrics
        metric = device_metric("latency_ms", dev.name)
        return (
            {**metrics, metric: metrics[metric] * self._factor(dev.name, arch, scale)} if metric in metrics else metrics
        )

    def _factor(self, device: str, arch: Architecture, scale: LatencyScale) -> float:
        """`arch`'s latency factor on `device`: the device's, or its own from its most similar measured networks."""
        neighbours = self._neighbours.get(device)
        if neighbours is None:
            return scale.scale
        key = (device, arch.hash)
        factor = self._factors.get(key)
        if factor is None:
            factor = neighbours.factor(self._signatures.get(arch.hash) or Signature.of(arch))
            if len(self._factors) < 200_000:
                self._factors[key] = factor
        return factor

    def rescales(self, dev: DeviceSpec) -> bool:
        """Are `dev`'s latency estimates rescaled by its measurements (a `measure` judges its evaluated
        networks, its time model runs nothing, and the config leaves `rescale_by_measure` on)?"""
        if not dev.rescale_by_measure or dev.measure is None:
            return False
        return not getattr(self.components.time_model(dev, "time_model"), "measures", False)

    def rescale(self, history: Sequence[Evaluated]) -> None:
        """Set each rescaled device's factor from the evaluated networks in `history` (called at each refit,
        with the history the predictors are fit on): the median of measured over estimated latency, once
        `MIN_RESCALE_NETWORKS` networks have both, and with `rescale_neighbours` each network's own (rescale.py);
        a network whose estimate fails is left out."""
        for dev in self.config.devices:
            if not self.rescales(dev):
                continue
            metric = device_metric("latency_ms", dev.name)
            ratios, measured_archs = [], []
            for e in history:
                measured = e.score.metrics.get(metric) if e.error is None and e.score.real else None
                if measured is None or not measured > 0:
                    continue
                try:
                    estimated = self._estimate(dev, e.candidate.arch, "time_model").get(metric)
                except TimeModelError:
                    continue
                if estimated is not None and estimated > 0:
                    ratios.append(measured / estimated)
                    measured_archs.append(e.candidate.arch)
            if len(ratios) < MIN_RESCALE_NETWORKS:
                continue
            new, old = LatencyScale.of(ratios, dev.rescale_neighbours), self.scales.get(dev.name)
            self.scales[dev.name] = new
            self._factors = {k: v for k, v in self._factors.items() if k[0] != dev.name}
            if dev.rescale_neighbours > 0:
                # kept for the next refits: the measured networks only (a candidate's is used once per refit)
                for a in measured_archs:
                    if a.hash not in self._signatures:
                        self._signatures[a.hash] = Signature.of(a)
                sigs = [self._signatures[a.hash] for a in measured_archs]
                self._neighbours[dev.name] = Neighbours(dev.rescale_neighbours, sigs, ratios)
            # INFO when a factor is first set or moves by over 5%, else DEBUG: not one line per round
            level = logging.INFO if old is None or abs(new.scale / old.scale - 1) > 0.05 else logging.DEBUG
            logger.log(
                level,
                "device %s: %s latency estimates scaled by %.4g (median measured/estimated over %d networks, "
                "p10 %.4g, p90 %.4g)%s",
                dev.name, dev.time_model.name, new.scale, new.networks, new.ratio_p10, new.ratio_p90,
                f", each network's moved towards its {new.neighbours} most similar measured networks'"
                if new.neighbours else "",
            )  # fmt: skip

    def _estimate(self, dev: DeviceSpec, arch: Architecture, which: str) -> dict[str, float]:
        """`estimate` before rescaling: what the time model (or the measurement) gave, cached."""
        key = (dev.name, which, arch.hash)
        cached = self._estimates.get(key)
        if cached is not None:
            return cached
        tm = self.components.time_model(dev, which)
        if getattr(tm, "measures", False):
            if self.truth is None:
                raise ConfigError(
                    f"device {dev.name}: a measuring time model needs the ground truth of a run "
                    "(a scorer built without one cannot measure)"
                )
            doc = self.truth.measure(dev, arch, which)
            self._beside[(dev.name, arch.hash)] = beside_measured(doc)
            self._loads.setdefault(dev.name, []).append((doc.get("load_average_1min"), doc.get("cores")))
            self.measurement_warnings.add(dev.name, arch.hash, doc, told=[getattr(tm, "fallback_warning", None)])
        else:
            # a shallow dict: asdict would deep-copy the estimate's per-layer details (a roofline's: ~40% of
            # a roofline search's time), of which only the top-level figures are read
            what = f"time model {tm.name!r}"
            plugin = self.components.toolkit.time_models.plugin_of(tm.name)
            with blame(what, plugin, f"on network {arch.hash} for device {dev.name}"):
                est = tm.estimate(arch, dev.batch_size)
            problems = estimate_problems(est, tm.name, dev.batch_size)
            if problems:
                raise wrong_answer(what, plugin, f"network {arch.hash} on device {dev.name} an estimate", problems)
            doc = {f.name: getattr(est, f.name) for f in fields(est)}
            self.counters.time_model_calls += 1
        metrics = {device_metric(m, dev.name): float(doc[m]) for m in ESTIMATE_METRICS if doc.get(m) is not None}
        if self.components.training_plan is not None and trains(self.config, dev):
            metrics[device_train_metric(dev.name)] = self._train_time_s(dev, arch, which, doc)
        self._estimates[key] = metrics
        return metrics

    def _train_time_s(self, dev: DeviceSpec, arch: Architecture, which: str, doc: Mapping[str, Any]) -> float:
        """`train_time_s@dev`: the evaluator's training plan at the time model's training-step time. A measuring
        model's step is measured at the plan's batch size (a second stored measurement when the device's batch
        size differs)."""
        plan = self.components.training_plan
        assert plan is not None
        tm = self.components.time_model(dev, which)
        if not getattr(tm, "measures", False):
            self.counters.time_model_calls += 1
            return tm.train_time(arch, plan).train_time_s
        assert self.truth is not None  # `estimate` checked it
        if plan.step_batch_size != dev.batch_size:
            doc = self.truth.measure(replace(dev, batch_size=plan.step_batch_size), arch, which)
        step_ms = doc.get("train_step_ms")
        if step_ms is None:
            why = "; ".join(doc.get("warnings") or ()) or "no training step in its measurement"
            raise TimeModelError(f"device {dev.name}: {tm.name} measured no training step of {arch.hash}: {why}")
        return float(step_ms) * plan.steps / 1000.0

    # ---- the hard-budget screen ------------------------------------------------------------------------
    @cached_property
    def screened_budgets(self) -> tuple[Budget, ...]:
        """The hard budgets a proposal can be checked against for free before it is evaluated (see the
        module docstring). Empty when search.screen_hard_budgets is off."""
        if not self.config.search.screen_hard_budgets:
            return ()
        known = {"model_size_bytes"}
        for dev in self.config.devices:
            if dev.measure is None and not getattr(self.components.time_models[dev.name], "measures", False):
                known.update(device_metric(m, dev.name) for m in ESTIMATE_METRICS)
                known.add(device_train_metric(dev.name))
        return tuple(b for b in self.config.budgets if b.hard and b.metric in known)

    def breaks_screened_budget(self, arch: Architecture) -> tuple[Budget, ...]:
        """The screened hard budgets `arch` breaks (empty: it passes the screen)."""
        budgets = self.screened_budgets
        if not budgets:
            return ()
        metrics = {"model_size_bytes": float(arch.cost.model_size_bytes)}
        devices = {b.device for b in budgets}
        try:
            for dev in self.config.devices:
                if dev.name in devices:
                    metrics.update(self.estimate(dev, arch, "time_model"))
        except TimeModelError:
            return ()  # the evaluation will report the failure
        return tuple(b for b in budgets if b.metric in metrics and metrics[b.metric] > b.limit)

    # ---- predicted scores ------------------------------------------------------------------------------
    def _prior(self, target: str) -> tuple[float, float]:
        """Mean and spread of the ground truth so far: what an unfitted predictor says of any candidate."""
        values = self.truth.observed(target) if self.truth is not None else []
        if not values:
            return 0.0, 1.0
        mean = float(np.mean(values))
        return mean, max(float(np.std(values)), 0.05 * abs(mean), 1e-3)

    def _predict(self, target: str, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        pred = self.predictors.get(target)
        if pred is None:
            prior_mean, prior_std = self._prior(target)
            return np.full(len(archs), prior_mean), np.full(len(archs), prior_std)
        self.counters.predictor_calls += len(archs)
        what, plugin = f"{target} predictor {pred.name!r}", self.components.toolkit.predictors.plugin_of(pred.name)
        with blame(what, plugin, "to predict"):
            # predict_with_notes: clipped into the target's range (accuracy 0..1) even where a plugin's
            # predictor overrides predict_with_std; the notes (what was clipped) are not needed here
            mean, std, _ = pred.predict_with_notes(list(archs))
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        problems = prediction_problems(mean, std, len(archs))
        if problems:  # a NaN ranks nothing and makes summary.json invalid JSON: the predictor's fault, named
            raise wrong_answer(what, plugin, f"{len(archs)} network(s) predictions", problems)
        return mean, std

    def predicted_accuracies(self, archs: Sequence[Architecture]) -> list[float] | None:
        """The fitted accuracy predictor's values for `archs` (None before the first fit). The ground truth
        records them for the evaluations the predictors are about to learn from: predicted against measured."""
        if "accuracy" not in self.predictors or not archs:
            return None
        return [float(v) for v in self._predict("accuracy", archs)[0]]

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        """Predicted scores: predictors for accuracy (and training time), time models per device."""
        archs = list(archs)
        self.counters.score_calls += 1
        self.counters.candidates_scored += len(archs)
        if not archs:
            return []
        acc, acc_std = self._predict("accuracy", archs)
        train = self._predict("train_time_s", archs) if "train_time_s" in self.components.predictor_targets else None
        out = []
        for i, arch in enumerate(archs):
            metrics: dict[str, float] = {
                "accuracy": float(acc[i]),
                "model_size_bytes": float(arch.cost.model_size_bytes),
            }
            if train is not None:
                metrics["train_time_s"] = float(train[0][i])
            try:
                for dev in self.config.devices:
                    metrics.update(self.estimate(dev, arch, "time_model"))
            except TimeModelError as exc:
                out.append(self.failed_score(f"time model failed: {exc}", metrics, real=False))
                continue
            r = compute_reward(metrics, self.config.budgets, self.config.objectives)
            up = 0.0
            if acc_std[i] > 0:  # the reward's spread from the accuracy's: one std up, through the reward function
                up = (
                    compute_reward(
                        {**metrics, "accuracy": float(acc[i] + acc_std[i])}, self.config.budgets, self.config.objectives
                    ).reward
                    - r.reward
                )
            out.append(
                Score(
                    r.reward, metrics, r.feasible, max(up, 0.0), real=False, violations=r.violations,
                    hard_violations=r.hard_violations,
                )
            )  # fmt: skip
        return out

    def budget_warnings(self, arch: Architecture) -> list[str]:
        """What to tell the user at the start when `arch` (the seed) already breaks a budget, by the time
        models (not counted as a score call: no strategy asked for it)."""
        score = self.score([arch])[0]
        self.counters.score_calls -= 1
        self.counters.candidates_scored -= 1
        self.seed_over_budget = [
            (b, score.metrics[b.metric])
            for b in self.config.budgets
            if score.metrics.get(b.metric) is not None and score.metrics[b.metric] > b.limit
        ]
        return self.seed_budget_warnings(None)

    def run_warnings(self, history: Sequence[Evaluated], others: list[str]) -> list[str]:
        """The run's warnings: the seed's budgets told with its evaluation (`seed_budget_warnings`), `others`
        (the loop's and the ground truth's), then those of noisy measurements."""
        return (
            self.seed_budget_warnings(seed_metrics(history))
            + others
            + self.noise_warnings
            + self.load_warnings()
            + self.measurement_warnings.lines()
        )

    def load_warnings(self) -> list[str]:
        """Per device, the measurements taken while the machine's 1-minute load average exceeded its cores:
        other processes wanted the cores the measurement timed, so its latencies include their contention."""
        out = []
        for device, loads in self._loads.items():
            busy = [(load, cores) for load, cores in loads if load is not None and cores and load > cores]
            if busy:
                top = max(busy, key=lambda lc: lc[0] / lc[1])
                out.append(
                    f"device {device}: {len(busy)} of {len(loads)} measurements ran while the machine's 1-minute load "
                    f"average exceeded its cores (up to {top[0]:g} on {top[1]}): their latencies include other "
                    "processes' contention and may not repeat; measure on a quiet machine"
                )
        return out

    def seed_budget_warnings(self, measured: Mapping[str, float] | None) -> list[str]:
        """The start's warnings, told again with the seed's evaluated metrics (`measured`, None before): a
        budget the estimate broke but the measurement meets says so, with how far the estimate was off,
        instead of a warning the run's own figures contradict."""
        out = []
        for b, value in self.seed_over_budget:
            note = f", {b.note}" if b.note else ""
            real = None if measured is None else measured.get(b.metric)
            if real is not None and 0 < real <= b.limit:
                out.append(
                    f"the seed's estimate broke budget {b.metric} ({value:.6g} > {b.limit:.6g}{note}, estimated "
                    f"before anything was measured), but it measures {real:.6g}, within the budget: the estimate "
                    f"is {value / real:.3g}x the measurement, and the time model's scores of other candidates "
                    "may be as far off (docs/time_models.md: what a roofline leaves out; a calibrated or learned "
                    "model is closer)"
                )
                continue
            out.append(
                f"the seed exceeds budget {b.metric} ({value:.6g} > {b.limit:.6g}{note}, {self._how_scored(b.metric)})"
                + ": the search must shrink it"
                + (f"; {CAPACITY_ADVICE}" if is_capacity(b) else "")
            )
        return out

    def _how_scored(self, metric: str) -> str:
        """How the start's figure of `metric` was obtained: by a device's measuring time model (measured),
        else estimated before anything is measured; a model's size is counted from its weights, exactly."""
        if metric == "model_size_bytes":
            return "counted from its weights"
        model = self.components.time_models.get(metric.partition("@")[2])
        if model is not None and model.measures:
            return f"measured by time model {model.name}"
        figure = metric.partition("@")[0]
        source = getattr(model, "figure_source", lambda _figure: None)(figure) if model is not None else None
        if source is not None and source.kind == "measured elsewhere":  # a table of others' measurements (NB201's)
            return f"measured elsewhere: {source.how}"
        return "estimated before anything is measured"

    # ---- real scores -----------------------------------------------------------------------------------
    def failed_score(self, why: str, metrics: Mapping[str, float] | None = None, real: bool = True) -> Score:
        """`reward.failed_reward`: below every feasible candidate and every one that breaks a hard budget,
        however far (docs/search.md, "How candidates rank")."""
        return Score(failed_reward(self.config.objectives), dict(metrics or {}), False, 0.0, real, (why,))

    def real_score(self, arch: Architecture, rec: EvaluationRecord) -> tuple[Score, dict[str, bool]]:
        """The score of an evaluated candidate from its stored evaluation and each device's ground truth (the
        measuring time model when the device has one), and whether it meets each device's budgets."""
        devices = [d.name for d in self.config.devices]
        if rec.error is not None:
            return self.failed_score(f"evaluation failed: {rec.error}"), dict.fromkeys(devices, False)
        metrics = dict(rec.metrics)
        try:
            for dev in self.config.devices:
                which = "measure" if dev.measure is not None else "time_model"
                metrics.update(self.estimate(dev, arch, which))
        except TimeModelError as exc:
            return self.failed_score(f"measurement failed: {exc}", metrics), dict.fromkeys(devices, False)
        r = compute_reward(metrics, self.config.budgets, self.config.objectives)
        self._check_noise(arch, metrics)
        for dev in self.config.devices:  # after the reward, which they are not part of: shown, not scored
            metrics.update(
                {device_metric(k, dev.name): v for k, v in self._beside.get((dev.name, arch.hash), {}).items()}
            )
        score = Score(r.reward, metrics, r.feasible, 0.0, True, r.violations, r.hard_violations)
        return score, {d: r.feasible_for(d) for d in devices}

    def _check_noise(self, arch: Architecture, metrics: dict[str, float]) -> None:
        """A measured latency whose p10..p90 spread straddles its budget: whether the network meets the budget
        depends on the run (a busy machine), so say so instead of deciding silently. A latency reported as the
        minimum of the timed runs (`statistic = "min"`) lies below their p10: the budget counts as within the
        noise from that value up to the p90."""
        for b in self.config.budgets:
            device = b.metric.partition("@")[2]
            beside = self._beside.get((device, arch.hash), {}) if b.metric.startswith("latency_ms@") else {}
            if "latency_p10_ms" not in beside or "latency_p90_ms" not in beside or b.metric not in metrics:
                continue
            spread = (beside["latency_p10_ms"], beside["latency_p90_ms"])
            if not min(spread[0], metrics[b.metric]) <= b.limit <= max(spread[1], metrics[b.metric]):
                continue
            msg = (
                f"network {arch.hash}: measured {b.metric} {metrics[b.metric]:.4g} ms against the budget "
                f"{b.limit:g} ms lies within the measurement's noise (p10 {spread[0]:.4g} .. p90 {spread[1]:.4g} ms): "
                "whether it meets the budget depends on the run; measure on a quieter machine or with more repeats"
            )
            if msg not in self.noise_warnings:
                self.noise_warnings.append(msg)


def prediction_problems(mean: np.ndarray, std: np.ndarray, n: int) -> list[str]:
    """What is wrong with a predictor's answer for `n` networks: one finite mean per network, and a finite,
    non-negative std of the same shape (empty: nothing)."""
    if mean.shape != (n,):
        return [f"{mean.size} mean value(s) in shape {mean.shape}, not one per network ({n},)"]
    if std.shape != (n,):
        return [f"a std of shape {std.shape}, not one per network ({n},)"]
    problems = []
    if not np.all(np.isfinite(mean)):
        problems.append(f"{int(np.sum(~np.isfinite(mean)))} mean value(s) NaN or infinite")
    if not np.all(np.isfinite(std)) or np.any(std < 0):
        problems.append("a std NaN, infinite or negative")
    return problems
