"""The search configuration (`na-toolkit search CONFIG.toml`): read, then resolved.

Two steps, so that reading has no side effects:

- `load_config(source)` reads a TOML file (or takes a dict of the same shape), checks it against the
  document models (`config_models.SearchDocument`: unknown keys with the close matches, missing fields,
  types, ranges) and returns a `SearchConfig`. It touches nothing but the file it reads.
- `resolve_config(config, toolkit)` checks it against the registries and the file system: the components
  and moves it names exist, every component's options satisfy its `Options` model
  (`na_toolkit.validation`), the seed network exists and builds, and relative paths are made absolute against
  the config file's folder. Everything is checked here, before a run folder exists or anything is paid.

Every problem is one `ConfigError` naming the path of the bad value (`devices.cpu.time_model.options.threads`,
`predictors.accuracy.options.n_estimators`). docs/search.md documents the format with a complete example;
docs/options.md the components' options.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import ConfigError, UnknownComponentError
from ..files import SEARCH_CONFIG, read_document, read_toml, warn_shadowed
from ..ir.seeds import build_seed_reference, seed_reference
from ..validation import check_options, format_validation_error, takes_option, validate
from .config_models import ComponentDoc, DeviceDoc, SearchDocument, SearchSettings, plain_document
from .rescale import DEFAULT_RESCALE_NEIGHBOURS
from .reward import Budget, Objectives, device_metric

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..registry import Registry
    from ..toolkit import Toolkit

DEFAULT_STRATEGY = "neural-architect"
#: the strategy used when none is named and DEFAULT_STRATEGY is not registered
FALLBACK_STRATEGY = "evolution"
DEFAULT_EVALUATOR = "torch"
DEFAULT_EXECUTOR = "local"
#: option keys whose string values name files, resolved against the config file's folder when they exist
PATH_OPTIONS = ("device", "profile", "table", "path", "hardware", "dataset", "file", "pretrained")
#: a value of a PATH_OPTIONS key with one of these suffixes (or a path separator) names a file, which must exist
FILE_SUFFIXES = (".json", ".jsonl", ".toml", ".onnx", ".npz", ".npy", ".csv", ".pt", ".pth", ".yaml", ".yml", ".txt")

__all__ = [
    "Component",
    "ConfigError",
    "DeviceSpec",
    "SearchConfig",
    "SearchSettings",
    "build_seed",
    "default_predictor",
    "load_config",
    "read_config_file",
    "resolve_config",
]


# ---- the configuration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    """A registered component by name and the keyword options to build it with."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": copy.deepcopy(self.options)}


@dataclass(frozen=True)
class DeviceSpec:
    """One target device: the time model that scores candidates on it, optionally a measuring time model
    for the ground truth of evaluated candidates, and its budgets (metrics written `metric@name`)."""

    name: str
    device: str
    batch_size: int
    time_model: Component
    measure: Component | None
    budgets: tuple[Budget, ...]
    #: the cluster resource of the fleet nodes that measure this device (`device:NAME`, what
    #: `na-toolkit worker --device NAME` advertises); None: measured where the executor runs it
    resource: str | None = None
    #: scale the time model's latency estimates by the run's measured/estimated ratio (`Scorer.rescale`):
    #: the config's `rescale_by_measure`, by default on when the device has a `measure`
    rescale_by_measure: bool = False
    #: with rescale_by_measure: each network's factor from its N most similar measured networks (0: the device's
    #: one factor; search/rescale.py)
    rescale_neighbours: int = DEFAULT_RESCALE_NEIGHBOURS

    def time_model_options(self, which: str = "time_model") -> dict[str, Any]:
        comp = self.time_model if which == "time_model" else self.measure
        assert comp is not None
        return {"device": self.device, **comp.options}


@dataclass(frozen=True)
class SearchConfig:
    """A checked search config: what the loop, the strategies and the run store read (`load_config`), and
    once `resolve_config` has run, checked against a toolkit and the file system too (`resolved`)."""

    name: str
    seed_network: str
    dataset: str | None
    evaluations: int
    random_seed: int
    output: Path
    search: SearchSettings
    strategy: Component
    evaluator: Component
    predictors: dict[str, Component]
    executor: Component
    objectives: Objectives
    global_budgets: tuple[Budget, ...]
    devices: tuple[DeviceSpec, ...]
    #: the validated document (after `resolve_config`: the seed network, dataset and output paths
    #: absolute): what the run store keeps and `--resume` reloads
    doc: dict[str, Any]
    #: the folder relative paths in the document are resolved against (the config file's)
    base_dir: Path = field(default_factory=Path.cwd, compare=False)
    #: a new run's config re-based on its run folder (search/inputs.py): the folder its config came from,
    #: where an error looks for what a name that resolves to nothing may have meant
    origin_dir: Path | None = field(default=None, compare=False)
    #: True once `resolve_config` checked it against a toolkit and the file system
    resolved: bool = field(default=False, compare=False)

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """Every budget: the global ones, then each device's."""
        return self.global_budgets + tuple(b for d in self.devices for b in d.budgets)

    def device(self, name: str) -> DeviceSpec:
        for d in self.devices:
            if d.name == name:
                return d
        raise ConfigError(_unknown("device", name, [d.name for d in self.devices]))

    def needs(self, metric: str) -> bool:
        """Does any budget limit `metric` (e.g. `train_time_s`)?"""
        return any(b.metric == metric for b in self.budgets)

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.doc)


def _unknown(kind: str, name: str, known: list[str]) -> str:
    return str(UnknownComponentError(kind, name, known))  # the registries' wording, close matches included


# ---- reading (no side effects) -------------------------------------------------------------------------
def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    return read_document(path, SEARCH_CONFIG, "config file", ConfigError, read_toml)  # not a profile, a model...


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | SearchConfig,
    overrides: Mapping[str, Any] | None = None,
    toolkit: Toolkit | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> SearchConfig:
    """Read and check a config (TOML path, dict or SearchConfig) against the document models; relative
    paths are later resolved against the file's folder (a dict's: `base_dir`, default the current one).
    `overrides` replace top-level keys (the CLI's --evaluations, --output, --seed).

    With `toolkit`, the result is also resolved: `resolve_config(load_config(source, ...), toolkit)`."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides: a dict of top-level keys and their values, got {type(overrides).__name__}")
    if isinstance(source, SearchConfig):
        if not overrides:
            return source if toolkit is None else resolve_config(source, toolkit)
        doc, base = copy.deepcopy(source.doc), source.base_dir
    elif isinstance(source, (str, os.PathLike)):
        doc = read_config_file(source)
        base = Path(source).resolve().parent
    elif isinstance(source, Mapping):
        doc = copy.deepcopy(dict(source))
        base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    else:
        raise ConfigError(f"a search config is a TOML path, a dict or a SearchConfig, got {type(source).__name__}")
    for key, value in (overrides or {}).items():
        if value is not None:
            doc[key] = value
    # a library user's Path (for `output`, `seed_network`, `dataset` or an option naming a file) is the string
    # a TOML file would hold
    config = parse_config(plain_document(doc), base)
    return config if toolkit is None else resolve_config(config, toolkit)


def _validate_document(doc: Mapping[str, Any]) -> SearchDocument:
    try:
        return SearchDocument.model_validate(doc)
    except ValidationError as exc:
        loc = exc.errors(include_url=False)[0].get("loc", ())
        devices = doc.get("devices")
        if len(loc) >= 3 and loc[0] == "devices" and isinstance(devices, Mapping) and loc[1] in devices:
            # checked again on its own, so the hint for a misspelt key names the keys of a device table
            validate(DeviceDoc, devices[loc[1]], f"devices.{loc[1]}")
        raise ConfigError(format_validation_error(exc, SearchDocument)) from None


def parse_config(doc: Mapping[str, Any], base_dir: Path) -> SearchConfig:
    """The `SearchConfig` of a document (a dict as TOML gives it): no registry, no file read (`output` is
    made absolute against `base_dir`; everything else is resolved by `resolve_config`)."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"a search config is a table of keys, got {type(doc).__name__}")
    d = _validate_document(doc)
    output = Path(d.output)
    output = (output if output.is_absolute() else base_dir / output).resolve()
    all_hard, objectives = d.reward.hard, d.reward.objectives()

    def budgets(table: Any, raw: Any, metric_name: Any, where: str) -> tuple[Budget, ...]:
        out = []
        for metric in raw if isinstance(raw, Mapping) else {}:  # the order written: rewards sum in it
            b = getattr(table, metric)
            if b is None:  # a dict config's `latency_ms: None`: no budget, as if left out
                continue
            hard = all_hard if b.hard is None else b.hard
            out.append(Budget(metric_name(metric), b.limit, b.weight, hard))
            objectives.check_power(out[-1], f"{where}.{metric}")
        return tuple(out)

    raw_devices = doc.get("devices", {})
    devices = tuple(
        DeviceSpec(
            name,
            dev.device if dev.device is not None else name,
            dev.batch_size,
            _component(dev.time_model, ""),
            _component(dev.measure, "") if dev.measure is not None else None,
            budgets(
                dev.budgets,
                raw_devices[name].get("budgets"),
                lambda m, n=name: device_metric(m, n),
                f"devices.{name}.budgets",
            ),
            dev.resource,
            *_rescale(name, dev.rescale_by_measure, dev.rescale_neighbours, dev.measure is not None),
        )
        for name, dev in d.devices.items()
    )
    accuracy = _component(d.predictors.accuracy, _default_predictor_name())
    predictors = {
        "accuracy": accuracy,
        "train_time_s": (
            _component(d.predictors.train_time_s, accuracy.name)
            if d.predictors.train_time_s is not None
            else Component(accuracy.name, copy.deepcopy(accuracy.options))
        ),
    }
    stored = copy.deepcopy(dict(doc))
    stored["output"] = str(output)
    return SearchConfig(
        name=d.name,
        seed_network=d.seed_network,
        dataset=d.dataset,
        evaluations=d.evaluations,
        random_seed=d.random_seed,
        output=output,
        search=d.search,
        strategy=_component(d.strategy, DEFAULT_STRATEGY),
        evaluator=_component(d.evaluator, DEFAULT_EVALUATOR),
        predictors=predictors,
        executor=_component(d.executor, DEFAULT_EXECUTOR),
        objectives=objectives,
        global_budgets=budgets(d.budgets, doc.get("budgets"), lambda m: m, "budgets"),
        devices=devices,
        doc=stored,
        base_dir=base_dir,
    )


def _component(doc: ComponentDoc | None, default: str) -> Component:
    if doc is None:
        return Component(default, {})
    return Component(doc.name if doc.name is not None else default, copy.deepcopy(doc.options))


def _rescale(device: str, given: bool | None, neighbours: int | None, has_measure: bool) -> tuple[bool, int]:
    """`devices.NAME.rescale_by_measure`: as given, else on when the device has a `measure`; on without a
    `measure` is refused (there is nothing to scale by). `rescale_neighbours`: as given, else
    DEFAULT_RESCALE_NEIGHBOURS; given where nothing is rescaled, refused (it would do nothing)."""
    if given and not has_measure:
        raise ConfigError(
            f"devices.{device}.rescale_by_measure: true needs a `measure` on the device (its measurements are what "
            "the time model's estimates are scaled by); add one, or leave the option out"
        )
    rescales = has_measure if given is None else given
    if neighbours is not None and not rescales:
        why = "has no `measure`" if not has_measure else "sets rescale_by_measure = false"
        raise ConfigError(
            f"devices.{device}.rescale_neighbours: the device {why}, so its estimates are not rescaled and the "
            "option would do nothing; leave it out"
        )
    return rescales, DEFAULT_RESCALE_NEIGHBOURS if neighbours is None else neighbours


def _default_predictor_name() -> str:
    from ..predictors import DEFAULT_PREDICTOR

    return DEFAULT_PREDICTOR


# ---- resolving (registry, file system) -----------------------------------------------------------------
def default_predictor(toolkit: Toolkit) -> str:
    """The predictors package's default (`ensemble`), or the first registered one."""
    name = _default_predictor_name()
    if name in toolkit.predictors:
        return name
    names = toolkit.predictors.names()
    if not names:
        raise ConfigError("no predictor is registered; install one or name one under [predictors]")
    return names[0]


def _names_component(doc: Mapping[str, Any], *keys: str) -> bool:
    """Does the document name the component at `keys` itself (rather than leave it to the default)?"""
    value: Any = doc
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return isinstance(value, str) or (isinstance(value, Mapping) and "name" in value)


def resolve_config(config: SearchConfig, toolkit: Toolkit) -> SearchConfig:
    """`config` checked against `toolkit` and the file system, its relative paths made absolute: the
    components and moves exist, their options satisfy the components' `Options` models, the seed network
    exists and builds. A resolved config is returned as it is."""
    if config.resolved:
        return config
    base, doc = config.base_dir, config.doc
    seed_network = seed_reference(config.seed_network, base, toolkit)
    build_seed_reference(seed_network, toolkit)  # a seed that fails validation is refused before anything runs
    if config.search.moves is not None:
        for move in config.search.moves:
            if move not in toolkit.moves:
                raise ConfigError("search.moves: " + _unknown("move", move, toolkit.moves.names()))
    dataset = _dataset_reference(config.dataset, base, toolkit) if config.dataset is not None else None
    names = registered_names(toolkit)

    strategy = config.strategy
    if not _names_component(doc, "strategy") and strategy.name not in toolkit.strategies:
        strategy = replace(strategy, name=FALLBACK_STRATEGY)
    strategy = _checked("strategy", strategy, toolkit.strategies, base)
    evaluator = _checked("evaluator", config.evaluator, toolkit.evaluators, base, dataset=dataset, names=names)
    executor = _checked("executor", config.executor, toolkit.executors, base)
    predictors = dict(config.predictors)
    if not _names_component(doc, "predictors", "accuracy"):
        fallback = default_predictor(toolkit)
        unnamed = ["accuracy"] + ([] if _names_component(doc, "predictors", "train_time_s") else ["train_time_s"])
        for target in unnamed:
            predictors[target] = replace(predictors[target], name=fallback)
    predictors = {
        target: _checked(f"predictors.{target}", comp, toolkit.predictors, base, names=names)
        for target, comp in predictors.items()
    }
    devices = tuple(_resolve_device(dev, toolkit, base, names) for dev in config.devices)

    stored = copy.deepcopy(doc)
    stored["seed_network"] = seed_network
    if dataset is not None:
        stored["dataset"] = dataset
    return replace(
        config,
        seed_network=seed_network,
        dataset=dataset,
        strategy=strategy,
        evaluator=evaluator,
        executor=executor,
        predictors=predictors,
        devices=devices,
        doc=stored,
        resolved=True,
    )


def _checked(
    key: str,
    comp: Component,
    registry: Registry[Any],
    base: Path,
    dataset: str | None = None,
    implied: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
) -> Component:
    """`comp` with its path options resolved, once its name is registered and its options (with the
    `implied` ones the loop adds: a time model's device) satisfy its options model."""
    if comp.name not in registry:
        raise ConfigError(f"{key}: " + _unknown(registry.kind, comp.name, registry.names()))
    cls = registry.get(comp.name)
    comp = replace(comp, options=_resolve_paths(comp.options, base, f"{key}.options.", names))
    options = {**(implied or {}), **comp.options}
    if dataset is not None:  # the evaluator is handed the config's dataset (search/loop.py)
        given = options.get("dataset")
        if given is not None and given != dataset:
            raise ConfigError(f"{key}.options.dataset ({given!r}) differs from dataset ({dataset!r}); give one")
        if not takes_option(cls, "dataset"):
            raise ConfigError(f"dataset: {registry.kind} {comp.name!r} takes no dataset option; leave `dataset` out")
        options["dataset"] = dataset
    for name in set(implied or {}) - set(comp.options):  # a key the user never wrote: say where it comes from
        if not takes_option(cls, name):
            raise ConfigError(
                f"{key}: {registry.kind} {comp.name!r} (plugin {registry.plugin_of(comp.name)}) takes no {name!r} "
                f"option, which the search gives every device's {registry.kind} (the device's `{name}`): its "
                f"Options must declare `{name}`"
            )
    check_options(cls, options, f"{key}.options")
    return comp


def _resolve_device(dev: DeviceSpec, toolkit: Toolkit, base: Path, names: Mapping[str, str]) -> DeviceSpec:
    where = f"devices.{dev.name}"
    device = _resolve_paths({"device": dev.device}, base, f"{where}.", names)["device"]
    implied = {"device": device}
    time_model = _checked(f"{where}.time_model", dev.time_model, toolkit.time_models, base, None, implied, names)
    measure = (
        _checked(f"{where}.measure", dev.measure, toolkit.time_models, base, None, implied, names)
        if dev.measure is not None
        else None
    )
    return replace(dev, device=device, time_model=time_model, measure=measure)


def names_file(value: Any) -> bool:
    """Does an option value name a file (a path separator, or a file suffix such as .json or .toml) rather
    than a registered name such as `x86-cpu` or a device such as `cuda:0`?"""
    return isinstance(value, str) and (
        os.path.isabs(value) or "/" in value or os.sep in value or Path(value).suffix.lower() in FILE_SUFFIXES
    )


def registered_names(toolkit: Toolkit) -> dict[str, str]:
    """What each name a path option may take instead of a file is (`x86-cpu`: a hardware model, `example-cpu`:
    a device profile, `digits`: a dataset): a file of that name beside a config is not read (a warning)."""
    kinds = {"model": "hardware model", "profile": "device profile"}
    names = dict.fromkeys(toolkit.datasets.names(), "dataset")
    names.update({name: kinds.get(src.kind, "hardware model") for name, src in toolkit.hardware.items()})
    return names


def _resolve_paths(
    options: Mapping[str, Any], base_dir: Path, where: str, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Option values naming files that exist relative to `base_dir`, made absolute (other values as given:
    a registered name such as `x86-cpu` stays a name, with a warning where a file of that name lies in
    `base_dir`: `names`, `registered_names`); a value that names a file which does not exist is a ConfigError
    naming its key (`where` + key), before anything runs."""
    out = dict(options)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if not isinstance(value, str):
            continue
        candidate = Path(value) if os.path.isabs(value) else base_dir / value
        if candidate.exists() and (os.path.isabs(value) or os.sep in value or Path(value).suffix):
            out[key] = str(candidate.resolve())
        elif names_file(value) and not candidate.exists():
            raise ConfigError(f"{where}{key}: file {str(candidate)!r} does not exist; give an existing file")
        elif names is not None and value in names:
            warn_shadowed(names[value], value, candidate)  # a registered name wins: `./NAME` is the file
    return out


def _dataset_reference(value: str, base: Path, toolkit: Toolkit) -> str:
    """The dataset as stored: a registered name, or the absolute path of a file or folder (a bare name such
    as `imgs` that is no registered dataset but exists beside the config is that folder, wherever the
    search is started from; a registered one is the dataset, and a folder of that name is `./NAME`)."""
    if value in toolkit.datasets:
        warn_shadowed("dataset", value, base / value)  # a registered name wins: `./NAME` is the file or folder
        return value
    value = os.path.expanduser(value)  # '~/data/imgs': the user's home, as a shell reads it
    path = Path(value) if os.path.isabs(value) else base / value
    if path.exists():
        return str(path.resolve())
    if names_file(value):
        where = "" if os.path.isabs(value) else " (a relative path is read from the config's folder)"
        raise ConfigError(
            f"dataset: {str(path)!r} does not exist{where}; give an .npz file, a folder with one subfolder per "
            f"class, or a registered dataset ({', '.join(toolkit.datasets.names()[:6])}: na-toolkit datasets)"
        )
    return value  # a name: the dataset registry says whether it is one, with its suggestions


def build_seed(source: SearchConfig | str, toolkit: Toolkit, label: str = "seed_network") -> Architecture:
    """The seed network of a config (or of a resolved reference: a registered name or an absolute path),
    built with the toolkit's layer types; a seed that fails validation is a ConfigError naming `label`."""
    if isinstance(source, SearchConfig):
        resolved = source.resolved
        reference = source.seed_network if resolved else seed_reference(source.seed_network, source.base_dir, toolkit)
    else:
        reference = source
    return build_seed_reference(reference, toolkit, label)
