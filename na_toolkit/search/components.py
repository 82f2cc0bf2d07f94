"""Building a search's components from its config and toolkit, with every component's errors translated
in one place into a `ConfigError` that names the config key (`devices.cpu.time_model`, `predictors.accuracy
.options`, `strategy.options`, ...).

`build_components(config, toolkit)` builds everything a run needs before anything is paid for or stored:
the seed network, the moves, each device's time model (and measuring one), the evaluator options (the
evaluator is built once to check them and that it can evaluate the seed), a predictor per target (built
once to check its options; the search refits fresh ones from `new_predictor`) and the executor, last (a Ray
executor connects to its cluster). Every predictor is conditioned on the descriptor of the search's dataset
(`Predictor.condition_on`) when that dataset is one the datasets registry (or a path) can load: the fitted
predictor records the dataset it learned, and one trained on several datasets predicts for this one. The
strategy needs the loop's context, so it is built from the components by `new_strategy(context)` when the
loop is made; its errors are translated here too.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NAToolkitError, UnknownComponentError
from ..evaluation import make_evaluator
from ..ir.seeds import fixed_seed_hint
from ..predictors.targets import metric_target
from ..timemodels import get_time_model
from ..timemodels.profile import ProfileDeviceWarning
from ..timemodels.profile_match import check_profile_batch
from .config import DeviceSpec, SearchConfig, build_seed, resolve_config
from .executors import Executor, make_executor
from .figure_sources import OPTIONAL_FIGURES, given_figures
from .strategy import SearchContext, Strategy
from .train_time import training_plan

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..datasets import DatasetDescriptor
    from ..ir.architecture import Architecture
    from ..moves import MoveType
    from ..predictors.base import Predictor
    from ..predictors.neural import SharedEmbedding
    from ..timemodels.base import TimeModel
    from ..timemodels.training import TrainingPlan
    from ..toolkit import Toolkit


@dataclass
class Components:
    """The built components of one search (see the module docstring)."""

    config: SearchConfig
    toolkit: Toolkit
    seed_arch: Architecture
    move_types: list[MoveType]
    #: device name -> the time model that scores candidates on it
    time_models: dict[str, TimeModel]
    #: device name -> the measuring time model that gives evaluated candidates their ground truth
    measures: dict[str, TimeModel]
    evaluator_options: dict[str, Any]
    #: what the predictors predict: accuracy, and the training time when a budget limits it
    predictor_targets: list[str]
    executor: Executor
    #: the plugin selection of the toolkit (`PluginSelection.to_json()`), which every task carries to its worker
    selection: dict[str, Any]
    #: target -> the predictor that keeps its state across refits (`keeps_state`: joint training with the
    #: controller, a pretrained one); `new_predictor` hands it out again (a copy) instead of a fresh one
    kept_predictors: dict[str, Predictor] = field(default_factory=dict)
    #: the descriptor of the dataset the candidates are evaluated on, which every predictor is conditioned on
    #: (None: the evaluator's dataset is no loadable dataset, e.g. a benchmark table's column)
    dataset_descriptor: DatasetDescriptor | None = None
    #: how the evaluator trains (None unless a device has a `train_time_s` budget): what the time models'
    #: `train_time_s@DEVICE` multiplies their step time by (search/train_time.py)
    training_plan: TrainingPlan | None = None

    def new_predictor(self, target: str) -> Predictor:
        """A fresh, unfitted predictor of `target` (the search refits from scratch each round), or, when it
        keeps its state, a copy of the one kept across refits (its `fit` starts from where the last one left
        it, and the one the scorer uses stays as it is until `keep` hands the fitted copy over: the async
        schedule fits in another thread while the loop scores). A predictor that shares its embedding with
        the controller is handed out itself: the controller holds that module (its fits run in line)."""
        kept = self.kept_predictors.get(target)
        if kept is not None:
            return kept if getattr(kept, "share_embedding", False) else copy.deepcopy(kept)
        return _new_predictor(self.config, self.toolkit, target).condition_on(self.dataset_descriptor)

    def keep(self, target: str, fitted: Predictor) -> None:
        """`fitted` (of `new_predictor(target)`) is the scorer's now: the next refit starts from it."""
        if target in self.kept_predictors:
            self.kept_predictors[target] = fitted

    def shared_embedding(self) -> SharedEmbedding | None:
        """The network embedding the accuracy predictor trains and lends the controller (a `neural` predictor
        with `share_embedding = true`), else None."""
        pred = self.kept_predictors.get("accuracy")
        if pred is None or not getattr(pred, "share_embedding", False):
            return None
        shared: SharedEmbedding = pred.shared_embedding(self.seed_arch.layer_types)
        return shared

    def new_strategy(self, context: SearchContext) -> Strategy:
        """The search strategy, built on the loop's context."""
        comp = self.config.strategy
        try:
            strategy: Strategy = self.toolkit.strategies.get(comp.name)(context, **comp.options)
        except ConfigError as exc:  # named as the config's key once (a strategy's own message may name it)
            text = str(exc)
            raise ConfigError(text if text.startswith("strategy.options") else f"strategy.options: {text}") from None
        except TypeError as exc:
            raise ConfigError(f"strategy.options: strategy {comp.name!r} refused {comp.options}: {exc}") from None
        return strategy

    def time_model(self, device: DeviceSpec, which: str) -> TimeModel:
        """Device `device`'s time model (`which`="time_model") or its measuring one ("measure")."""
        return self.time_models[device.name] if which == "time_model" else self.measures[device.name]

    def close(self) -> None:
        self.executor.close()


def _check_estimated_budgets(
    config: SearchConfig,
    time_models: dict[str, TimeModel],
    measures: dict[str, TimeModel],
    seed_arch: Architecture,
) -> None:
    """A budget on a figure a device's time model (or its measuring model) does not give, such as energy from
    a learned model or from ONNX Runtime on a CPU, is a ConfigError naming the budget before anything is
    stored: the model says so (`TimeModel.gives`), or a non-measuring one's estimate of the seed lacks it. A
    measuring model that cannot tell beforehand (energy on a GPU) says it when it measures."""
    from .reward import device_metric

    for dev in config.devices:
        # figures a time model may or may not give (a latency it always gives; training time: train_time.py)
        wanted = [m for m in OPTIONAL_FIGURES if config.needs(device_metric(m, dev.name))]
        if not wanted:
            continue
        models = [("time model", time_models[dev.name])]
        if dev.name in measures:
            models.append(("measure", measures[dev.name]))
        for role, model in models:
            for metric, gives in given_figures(model, wanted, seed_arch, dev.batch_size).items():
                if gives is False:
                    why = model.why_not_given(metric)
                    raise ConfigError(
                        f"devices.{dev.name}.budgets.{metric}: the {role} {model.name!r} of device {dev.name!r} gives "
                        f"no {metric} here{f' ({why})' if why else ''}; use a time model that estimates it "
                        "(docs/time_models.md), or drop the budget"
                    )


def with_capacity_budgets(config: SearchConfig, time_models: Mapping[str, TimeModel]) -> SearchConfig:
    """`config` with a hard budget on each device's `peak_memory_bytes` at the memory capacity its time model
    knows (a roofline's hardware model): a network that does not fit cannot run on the device, whatever the
    config's budgets say. Weight 0: it changes no reward of a network that fits, in either form. Not added
    where a config's hard budget is already at or below the capacity, nor for a device with a `measure`
    (measured networks ran on the device: they fit)."""
    from .reward import Budget, device_metric

    devices = []
    for dev in config.devices:
        capacity = time_models[dev.name].memory_capacity_bytes() if dev.measure is None else None
        metric = device_metric("peak_memory_bytes", dev.name)
        if capacity is not None and not any(b.metric == metric and b.hard and b.limit <= capacity for b in dev.budgets):
            model = getattr(time_models[dev.name], "hardware", None)
            where = f"hardware model {model.name}" if model is not None else f"time model {dev.time_model.name}"
            note = f"the memory capacity of {where}"
            dev = replace(dev, budgets=(*dev.budgets, Budget(metric, float(capacity), 0.0, True, note)))
        devices.append(dev)
    return replace(config, devices=tuple(devices))


def build_components(config: SearchConfig, toolkit: Toolkit) -> Components:
    """Build the components of a search (ConfigError naming the config key of the first that fails). An
    unresolved config is resolved against `toolkit` first."""
    config = resolve_config(config, toolkit)
    seed_arch = build_seed(config, toolkit)
    names = list(config.search.moves or toolkit.moves.names())
    move_types = [toolkit.moves.get(n) for n in names]
    measures = {d.name: _time_model(toolkit, d, "measure") for d in config.devices if d.measure is not None}
    time_models = {d.name: _time_model(toolkit, d, "time_model", measures.get(d.name)) for d in config.devices}
    for d in config.devices:  # a learned model estimates at its profile's batch size only
        check_profile_batch(d.name, d.batch_size, {"time model": time_models[d.name], "measure": measures.get(d.name)})
    evaluator_options = _evaluator_options(config)
    descriptor = dataset_descriptor(evaluator_options, toolkit)
    seed_arch = _seed_for_dataset(config, toolkit, seed_arch, descriptor)
    _check_evaluator(config, toolkit, evaluator_options, seed_arch)
    plan = training_plan(config, toolkit, evaluator_options, time_models, measures)
    _check_estimated_budgets(config, time_models, measures, seed_arch)
    config = with_capacity_budgets(config, time_models)
    targets = ["accuracy"] + (["train_time_s"] if config.needs("train_time_s") else [])
    # built now to check the options (and read a pretrained file), not after the first round
    built = {target: _new_predictor(config, toolkit, target).condition_on(descriptor) for target in targets}
    for target, pred in built.items():
        try:  # a torch predictor's device (CUDA asked for on a machine without it), before the run, not at its fits
            getattr(pred, "torch_device", lambda: None)()
        except NAToolkitError as exc:
            raise ConfigError(f"predictors.{target}.options.device: {exc}") from None
    kept = _kept_predictors(built, seed_arch)
    return Components(
        config=config,
        toolkit=toolkit,
        seed_arch=seed_arch,
        move_types=move_types,
        time_models=time_models,
        measures=measures,
        evaluator_options=evaluator_options,
        predictor_targets=targets,
        executor=_executor(config, toolkit),  # last: a Ray executor connects to its cluster
        selection=toolkit.selection.to_json(),
        kept_predictors=kept,
        dataset_descriptor=descriptor,
        training_plan=plan,
    )


def dataset_descriptor(evaluator_options: dict[str, Any], toolkit: Toolkit) -> DatasetDescriptor | None:
    """The descriptor of the evaluator's `dataset` option, split as the evaluator splits it; None when it names
    nothing the datasets registry or a path gives (a table evaluator's column such as NB201's "c10")."""
    from ..datasets import get_dataset
    from ..datasets.base import TEST_FRACTION, VALID_FRACTION

    name = evaluator_options.get("dataset")
    if not isinstance(name, str):
        return None
    try:
        ds = get_dataset(
            name,
            toolkit.datasets,
            seed=int(evaluator_options.get("split_seed", 0)),
            valid_fraction=float(evaluator_options.get("valid_fraction", VALID_FRACTION)),
            test_fraction=float(evaluator_options.get("test_fraction", TEST_FRACTION)),
            resize=evaluator_options.get("resize"),
        )
    except NAToolkitError:
        return None
    return ds.descriptor


def _time_model(toolkit: Toolkit, dev: DeviceSpec, which: str, measure: TimeModel | None = None) -> TimeModel:
    """The device's time model or measure. An estimating time model that takes a `statistic` option (learned:
    which of its profile's statistics it predicts) and is given none predicts the one the device's `measure`
    reports: measured latencies decide the budgets, so the estimates that choose what to measure are of the same."""
    comp = dev.time_model if which == "time_model" else dev.measure
    assert comp is not None  # "measure" is asked for only of devices that have one
    key = f"devices.{dev.name}.{which}"
    options = dev.time_model_options(which)
    try:
        cls = toolkit.time_models.get(comp.name)
        follows = "statistic" in getattr(cls, "OPTIONS", {}) and not getattr(cls, "measures", False)
        if follows and "statistic" not in options and getattr(measure, "statistic", None):
            options["statistic"] = getattr(measure, "statistic", None)
        with warnings.catch_warnings():
            # a profile of another device: the run's warnings say it with what it means (search/diagnostics.py)
            warnings.simplefilter("ignore", ProfileDeviceWarning)
            return get_time_model(comp.name, toolkit, **options)
    except NAToolkitError as exc:
        raise ConfigError(f"{key} ({comp.name} on device {options['device']!r}): {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}.options: time model {comp.name!r} refused {comp.options}: {exc}") from None


def _evaluator_options(config: SearchConfig) -> dict[str, Any]:
    opts = dict(config.evaluator.options)
    if config.dataset is not None:
        given = opts.get("dataset")
        if given is not None and given != config.dataset:
            raise ConfigError(
                f"evaluator.options.dataset ({given!r}) differs from dataset ({config.dataset!r}); give one"
            )
        opts["dataset"] = config.dataset
    return opts


def _seed_for_dataset(
    config: SearchConfig, toolkit: Toolkit, seed_arch: Architecture, descriptor: DatasetDescriptor | None
) -> Architecture:
    """A registered seed whose builder takes the input shape and class count is built for the search's
    dataset where its default build does not fit it (as `na-toolkit evaluate` does); a seed file, or a
    dataset it already fits, is used as it is."""
    if descriptor is None or config.seed_network not in toolkit.seeds:
        return seed_arch
    shape, classes = tuple(descriptor.input_shape), int(descriptor.classes)
    if seed_arch.input_shape == shape and seed_arch.output_shape == (classes,):
        return seed_arch
    name = config.seed_network
    try:
        built = toolkit.seeds.get(name).build_for(toolkit.layer_types, shape, classes)
    except NAToolkitError as exc:  # e.g. an input too small for the seed's downsampling
        raise ConfigError(
            f"seed_network: {name!r} cannot be built for dataset {descriptor.name!r} (input {shape}, {classes} "
            f"classes): {exc}"
        ) from None
    if built is None:
        return seed_arch  # the evaluator's check says what does not fit
    logger.info("seed network %r built for dataset %r: input %s, %d classes", name, descriptor.name, shape, classes)
    return built


def _check_evaluator(config: SearchConfig, toolkit: Toolkit, options: dict[str, Any], seed_arch: Architecture) -> None:
    name = config.evaluator.name
    try:
        evaluator = make_evaluator(name, options, toolkit)
    except NAToolkitError as exc:
        raise ConfigError(f"evaluator ({name}): {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"evaluator.options: evaluator {name!r} refused {options}: {exc}") from None
    check = getattr(evaluator, "check", None)
    if check is not None:
        try:
            check(seed_arch)
        except NAToolkitError as exc:
            dataset = options.get("dataset")
            if isinstance(exc, UnknownComponentError) and exc.kind == "dataset" and exc.name == dataset:
                from ..datasets import unknown_dataset

                # the paths it may have meant from the config's folder, where its relative paths are read from
                # (the evaluator looked in the working directory)
                exc = unknown_dataset(dataset, exc.known, config.origin_dir or config.base_dir)
            on = f"dataset {dataset!r}" if dataset is not None else "its default dataset"
            seed = config.seed_network
            hint = ""
            if seed in toolkit.seeds and not toolkit.seeds.get(seed).builds_for_data:
                hint = f"; {fixed_seed_hint(toolkit.seeds)}"
            raise ConfigError(
                f"evaluator {name!r} cannot evaluate seed_network {seed!r} on {on}: {exc}{hint}"
            ) from None


def _kept_predictors(predictors: dict[str, Predictor], seed_arch: Architecture) -> dict[str, Predictor]:
    """The predictors that keep their state across refits (`keeps_state`), with their pretrained files read
    now (a ConfigError naming the key). Every one that shares its embedding shares the accuracy predictor's
    (one performance network for all targets and the controller)."""
    kept = {t: p for t, p in predictors.items() if getattr(p, "keeps_state", False)}
    for target, pred in kept.items():
        try:  # a pretrained file is read in the search's unit, and one that names none is tried on the seed
            pred.restore_pretrained(probe=[seed_arch], networks="the seed network")
        except NAToolkitError as exc:
            raise ConfigError(f"predictors.{target}.options.pretrained: {exc}") from None
    first = kept.get("accuracy")
    if first is not None and getattr(first, "share_embedding", False):
        shared = first.shared_embedding(seed_arch.layer_types)
        for target, pred in kept.items():
            if target != "accuracy" and getattr(pred, "share_embedding", False):
                try:
                    pred.adopt_embedding(shared)
                except NAToolkitError as exc:
                    raise ConfigError(f"predictors.{target}.options.share_embedding: {exc}") from None
    return kept


def _new_predictor(config: SearchConfig, toolkit: Toolkit, target: str) -> Predictor:
    comp = config.predictors[target]
    options = dict(comp.options)
    pretrained = options.get("pretrained")
    if isinstance(pretrained, str) and not os.path.isabs(pretrained):
        # a file named in the config is found next to the config file, wherever the search runs from
        options["pretrained"] = str((config.base_dir / pretrained).resolve())
    try:
        pred = toolkit.predictors.get(comp.name)(**options)
        params = pred.get_params()
    except NAToolkitError as exc:
        raise ConfigError(f"predictors.{target} ({comp.name}): {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"predictors.{target}.options: predictor {comp.name!r} refused {comp.options}: {exc}"
        ) from None
    # scikit-learn convention: a fixed random_state makes refits (and so a resumed run) reproducible
    if "random_state" in params and params["random_state"] is None:
        pred.set_params(random_state=config.random_seed)
    # accuracy is a fraction in [0, 1], a time >= 0: the scorer never ranks on a prediction past them. A
    # pretrained file's output is brought into the search's unit when it is read (predictors/pretrained.py)
    return pred.for_target(metric_target(target))


def _executor(config: SearchConfig, toolkit: Toolkit) -> Executor:
    comp = config.executor
    try:
        return make_executor(comp.name, comp.options, toolkit)
    except ConfigError as exc:
        raise ConfigError(f"executor ({comp.name}): {exc}") from None
